/**
 * Wraps the sync client as the scheduler's runner to count cycles, failures, full reconciles and latencies for
 * /metrics. The full reconcile itself is the sync client's (SyncClient.requestFullResync).
 */
import { GatewayError } from '../errors.js';
import type { CycleReport, SyncRunner } from '../sync/index.js';

export interface CycleObservation {
  readonly ok: boolean;
  readonly seconds: number;
  readonly report?: CycleReport;
  readonly code?: string;
}

export class InstrumentedRunner implements SyncRunner {
  cycles = 0;
  failures = 0;
  conflicts = 0;
  fullReconciles = 0;
  readonly #inner: SyncRunner;
  readonly #observers: Array<(o: CycleObservation) => void> = [];

  constructor(options: { inner: SyncRunner }) {
    this.#inner = options.inner;
  }

  onCycle(observer: (o: CycleObservation) => void): void {
    this.#observers.push(observer);
  }

  /** The next cycle pulls everything (last_sync null) and reconciles. */
  requestFullResync(): void {
    this.fullReconciles += 1;
    this.#inner.requestFullResync?.();
  }

  async runCycle(): Promise<CycleReport> {
    const started = performance.now();
    try {
      const report = await this.#inner.runCycle();
      this.cycles += 1;
      this.conflicts += report.conflicts;
      this.#emit({ ok: true, seconds: (performance.now() - started) / 1000, report });
      return report;
    } catch (err) {
      this.cycles += 1;
      this.failures += 1;
      this.#emit({ ok: false, seconds: (performance.now() - started) / 1000, code: err instanceof GatewayError ? err.code : 'INTERNAL' });
      throw err;
    }
  }

  probe(): Promise<void> {
    return this.#inner.probe();
  }

  async destroy(): Promise<void> {
    await this.#inner.destroy?.();
  }

  #emit(o: CycleObservation): void {
    for (const observer of this.#observers) {
      try {
        observer(o);
      } catch {
        // an observer (metrics) must never break a sync cycle
      }
    }
  }
}

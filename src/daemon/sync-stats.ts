/**
 * Wraps the sync client as the scheduler's runner to count cycles, failures and latencies for /metrics, and to run a
 * requested full reconcile (the `reconcile` job, `sync --full`): the watermark is dropped just before the next cycle
 * starts, inside the same runner call, so no other cycle can write it back in between (design.md §Deletes: a pull
 * from last_sync null reconciles deletes by absence).
 */
import { GatewayError } from '../errors.js';
import type { SyncStateRepo } from '../store/sync-state.js';
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
  readonly #state: SyncStateRepo;
  readonly #observers: Array<(o: CycleObservation) => void> = [];
  #fullRequested = false;

  constructor(options: { inner: SyncRunner; state: SyncStateRepo }) {
    this.#inner = options.inner;
    this.#state = options.state;
  }

  onCycle(observer: (o: CycleObservation) => void): void {
    this.#observers.push(observer);
  }

  /** The next cycle pulls everything (last_sync null) and reconciles. */
  requestFullReconcile(): void {
    this.#fullRequested = true;
  }

  async runCycle(): Promise<CycleReport> {
    if (this.#fullRequested) {
      this.#fullRequested = false;
      this.fullReconciles += 1;
      this.#state.delete('last_sync');
    }
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

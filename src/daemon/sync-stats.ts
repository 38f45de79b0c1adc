/**
 * Wraps the sync client as the scheduler's runner to count cycles, live waits, pushes, failures, full reconciles and
 * latencies for /metrics. The full reconcile itself is the sync client's (SyncClient.requestFullResync).
 */
import { GatewayError } from '../errors.js';
import type { CycleReport, LiveRoundReport, LiveSupport, PushOnlyReport, SyncRunner } from '../sync/index.js';

export interface CycleObservation {
  /** `cycle`: a full cycle; `live`: a live wait answered (or failed); `push`: local changes pushed alone. */
  readonly kind: 'cycle' | 'live' | 'push';
  readonly ok: boolean;
  readonly seconds: number;
  /** Changes pulled and pushed by it (0 when it failed). */
  readonly pulled: number;
  readonly pushed: number;
  readonly report?: CycleReport;
  readonly code?: string;
}

type Inner = SyncRunner & Required<Pick<SyncRunner, 'probeLive' | 'liveRound' | 'pushPending'>>;

export class InstrumentedRunner implements SyncRunner {
  cycles = 0;
  failures = 0;
  conflicts = 0;
  fullReconciles = 0;
  liveRounds = 0;
  pushes = 0;
  readonly #inner: Inner;
  readonly #observers: Array<(o: CycleObservation) => void> = [];

  constructor(options: { inner: Inner }) {
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

  runCycle(): Promise<CycleReport> {
    this.cycles += 1;
    return this.#observe('cycle', () => this.#inner.runCycle(), (report) => {
      this.conflicts += report.conflicts;
      return { report };
    });
  }

  liveRound(options: { readonly waitSeconds: number; readonly signal?: AbortSignal }): Promise<LiveRoundReport> {
    this.liveRounds += 1;
    return this.#observe('live', () => this.#inner.liveRound(options), (report) => {
      this.conflicts += report.conflicts;
      return {};
    }, options.signal);
  }

  pushPending(): Promise<PushOnlyReport> {
    this.pushes += 1;
    return this.#observe('push', () => this.#inner.pushPending(), (report) => {
      this.conflicts += report.conflicts;
      return {};
    });
  }

  probe(): Promise<void> {
    return this.#inner.probe();
  }

  probeLive(): Promise<LiveSupport | undefined> {
    return this.#inner.probeLive();
  }

  async destroy(): Promise<void> {
    await this.#inner.destroy?.();
  }

  async #observe<R extends { readonly pulled: number; readonly pushed: number }>(
    kind: CycleObservation['kind'],
    work: () => Promise<R>,
    extra: (report: R) => Pick<CycleObservation, 'report'>,
    signal?: AbortSignal,
  ): Promise<R> {
    const started = performance.now();
    const seconds = (): number => (performance.now() - started) / 1000;
    try {
      const report = await work();
      this.#emit({ kind, ok: true, seconds: seconds(), pulled: report.pulled, pushed: report.pushed, ...extra(report) });
      return report;
    } catch (err) {
      if (signal?.aborted !== true) {
        this.failures += 1;
        this.#emit({ kind, ok: false, seconds: seconds(), pulled: 0, pushed: 0, code: err instanceof GatewayError ? err.code : 'INTERNAL' });
      }
      throw err;
    }
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

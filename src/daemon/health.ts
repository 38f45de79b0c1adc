/**
 * Pipeline health (docs/operations.md §systemd): the event loop answers, the broker listens, the store takes writes,
 * ingest commits, and sync is not failing past a threshold. Two verdicts: `healthy` (GET /healthz: all of it) and
 * `watchdogOk` (systemd's WATCHDOG=1: everything a restart could fix — not sync, which a restart cannot).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { GatewayStore } from '../store/index.js';
import type { PollingReason, SchedulerStatus } from '../sync/index.js';

export interface HealthOptions {
  /** The store: how its latest writes went, and a small durable probe write when none happened for a while. */
  readonly store: Pick<GatewayStore, 'writeHealth' | 'maintenance'>;
  readonly brokerListening: () => boolean;
  /** Cumulative group-commit counters (IngestMetrics). */
  readonly ingestCounters: () => { batchesCommitted: number; commitFailures: number };
  /** Null when sync is not configured. */
  readonly syncStatus: () => SchedulerStatus | null;
  readonly maxEventLoopLagMs: number;
  readonly storeProbeIntervalMs: number;
  readonly syncFailingAfterMs: number;
  readonly now?: () => number;
}

export interface CheckResult {
  readonly ok: boolean;
  readonly detail?: string;
}

export interface HealthReport {
  readonly healthy: boolean;
  readonly watchdogOk: boolean;
  /** One entry per failing check, e.g. "store: SQLITE_FULL: database or disk is full". */
  readonly reasons: readonly string[];
  readonly eventLoopLagMs: number;
  readonly checks: {
    readonly eventLoop: CheckResult;
    readonly broker: CheckResult;
    readonly store: CheckResult;
    readonly ingest: CheckResult;
    readonly sync: CheckResult;
  };
  readonly at: number;
}

/**
 * Health of the pipeline. Two entry points:
 *
 * - `tick()` — the supervisor's timer (and only it): closes the event-loop-lag window (reads and resets the delay
 *   histogram), takes the ingest counters as the new reference, and starts one small durable probe write when the
 *   store wrote nothing for `storeProbeIntervalMs` (spares the SD card) or after a failed write.
 * - `check()` — GET /healthz and anyone else: evaluates without side effects (no histogram reset, no probe, no
 *   reference moved), from the last tick's window plus what is true now.
 *
 * The store check reads how the store's latest write went (any commit is proof it takes writes; a failed commit is
 * visible at once, before any probe).
 */
export class HealthMonitor {
  readonly #o: HealthOptions;
  readonly #now: () => number;
  readonly #histogram: IntervalHistogram;
  readonly #startedAt: number;
  /** Ingest counters at the last tick. */
  #reference = { batchesCommitted: 0, commitFailures: 0 };
  /** The ingest verdict of the last tick (kept while no commit and no failure happened since). */
  #ingest: CheckResult = { ok: true };
  /** Event loop lag measured over the last tick's window, ms. */
  #lagMs = 0;
  #probing: Promise<void> | undefined;
  #lastProbeAt = -Infinity;
  #last: HealthReport | undefined;

  constructor(options: HealthOptions) {
    for (const key of ['maxEventLoopLagMs', 'storeProbeIntervalMs', 'syncFailingAfterMs'] as const) {
      const v = options[key];
      if (!(typeof v === 'number' && v > 0)) throw new TypeError(`health monitor: expected ${key} > 0, got ${String(v)}`);
    }
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    this.#reference = { ...options.ingestCounters() };
    this.#histogram = monitorEventLoopDelay({ resolution: 20 });
    this.#histogram.enable();
  }

  /** The last tick's report, or a fresh (side-effect-free) one before the first tick. */
  current(): HealthReport {
    return this.#last ?? this.check();
  }

  /** Evaluates now, changing nothing. */
  check(): HealthReport {
    return this.#evaluate(this.#now(), Math.max(this.#lagMs, this.#windowLagMs()), this.#ingestNow().verdict);
  }

  /** The supervisor's periodic step: closes the measurement windows, probes the store when due, evaluates. */
  tick(): HealthReport {
    const now = this.#now();
    this.#lagMs = this.#windowLagMs();
    this.#histogram.reset();
    const ingest = this.#ingestNow();
    this.#ingest = ingest.verdict;
    this.#reference = ingest.counters;
    const writes = this.#o.store.writeHealth();
    const quietFor = now - Math.max(writes.lastOkAt ?? this.#startedAt, this.#lastProbeAt);
    if (!ingest.verdict.ok || writes.failing !== null || quietFor >= this.#o.storeProbeIntervalMs) this.#probe(now);
    this.#last = this.#evaluate(now, this.#lagMs, this.#ingest);
    return this.#last;
  }

  stop(): void {
    this.#histogram.disable();
  }

  #windowLagMs(): number {
    return Math.round(Math.max(this.#histogram.max / 1e6 - 20, 0));
  }

  /** Commits and failures since the last tick: failures with no commit fail ingest; commits clear it; neither keeps the last verdict. */
  #ingestNow(): { verdict: CheckResult; counters: { batchesCommitted: number; commitFailures: number } } {
    const c = this.#o.ingestCounters();
    const counters = { batchesCommitted: c.batchesCommitted, commitFailures: c.commitFailures };
    const committed = counters.batchesCommitted - this.#reference.batchesCommitted;
    const failed = counters.commitFailures - this.#reference.commitFailures;
    if (failed > 0 && committed === 0) return { verdict: { ok: false, detail: `${failed} group commit(s) failed since the last check` }, counters };
    if (committed > 0 || failed === 0) return { verdict: committed > 0 ? { ok: true } : this.#ingest, counters };
    return { verdict: this.#ingest, counters };
  }

  #evaluate(now: number, lagMs: number, ingest: CheckResult): HealthReport {
    const eventLoop: CheckResult =
      lagMs <= this.#o.maxEventLoopLagMs ? { ok: true } : { ok: false, detail: `event loop lag ${lagMs} ms > ${this.#o.maxEventLoopLagMs} ms` };
    const broker: CheckResult = this.#o.brokerListening() ? { ok: true } : { ok: false, detail: 'mqtt broker is not listening' };
    const store = this.#checkStore();
    const sync = this.#checkSync(now);
    const checks = { eventLoop, broker, store, ingest, sync };
    const reasons = Object.entries(checks).flatMap(([name, c]) => (c.ok ? [] : [`${name}: ${c.detail ?? 'failing'}`]));
    const watchdogOk = eventLoop.ok && broker.ok && store.ok && ingest.ok;
    return { healthy: watchdogOk && sync.ok, watchdogOk, reasons, eventLoopLagMs: lagMs, checks, at: now };
  }

  #checkStore(): CheckResult {
    const writes = this.#o.store.writeHealth();
    if (writes.failing === null) return { ok: true };
    const { what, message } = writes.failing;
    return { ok: false, detail: what === 'probe' ? `write probe failed: ${message}` : `write failed: ${message}` };
  }

  /** One durable probe write at a time; its outcome lands in the store's write health. */
  #probe(now: number): void {
    if (this.#probing !== undefined) return;
    this.#lastProbeAt = now;
    this.#probing = this.#o.store.maintenance
      .probe(now)
      .catch(() => undefined) // recorded by the store's write health
      .finally(() => {
        this.#probing = undefined;
      });
  }

  #checkSync(now: number): CheckResult {
    const s = this.#o.syncStatus();
    if (s === null) return { ok: true };
    if (s.mode === 'online' || s.mode === 'stopped') return { ok: true, detail: describeSync(s) };
    const since = s.lastSuccessAt ?? this.#startedAt;
    const failingMs = now - since;
    if (failingMs <= this.#o.syncFailingAfterMs) return { ok: true, detail: describeSync(s) };
    const why = s.lastError ? `${s.lastError.code}: ${s.lastError.message}` : 'no successful cycle';
    return { ok: false, detail: `${s.mode} for ${Math.round(failingMs / 1000)} s (> ${Math.round(this.#o.syncFailingAfterMs / 1000)} s); last error ${why}` };
  }
}

const POLLING_WHY: Readonly<Record<PollingReason, string>> = {
  disabled: 'live waits off (sync.live)',
  unsupported: 'the server holds no live waits',
  refused: 'the server refused a live wait; retrying after its Retry-After',
  not_online: 'not online',
};

/** One phrase for /healthz and `status`: "live, held for 12 s" or "polling (the server holds no live waits)". */
export function describeSync(s: SchedulerStatus): string {
  if (s.mode !== 'online') return s.mode;
  if (s.via === 'live') return s.live.heldForMs === null ? 'live (re-opening)' : `live, held for ${Math.round(s.live.heldForMs / 1000)} s`;
  const why = s.live.pollingReason === null ? '' : ` (${pollingWhy(s.live.pollingReason)})`;
  return `polling every ${Math.round(s.intervalMs / 1000)} s${why}`;
}

/** Why sync polls, in words (`status`, /healthz); an unknown reason (a newer daemon) is shown as it is. */
export function pollingWhy(reason: string): string {
  return isPollingReason(reason) ? POLLING_WHY[reason] : reason;
}

function isPollingReason(reason: string): reason is PollingReason {
  return Object.prototype.hasOwnProperty.call(POLLING_WHY, reason);
}

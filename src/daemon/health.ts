/**
 * Pipeline health (issue 5 §2, §6): the event loop answers, the broker listens, the store takes writes, ingest
 * commits, and sync is not failing past a threshold. Two verdicts: `healthy` (GET /healthz: all of it) and
 * `watchdogOk` (systemd's WATCHDOG=1: everything a restart could fix — not sync, which a restart cannot).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { GatewayStore } from '../store/index.js';
import type { SchedulerStatus } from '../sync/index.js';

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
 * Evaluates health on each `check()` (the supervisor calls it on a timer). The store check reads how the store's
 * latest write went (any commit is proof the store takes writes); when nothing was written for
 * `storeProbeIntervalMs` (spares the SD card), or right after an ingest commit failure, one small durable probe write
 * is started, and its outcome is what the next check sees.
 */
export class HealthMonitor {
  readonly #o: HealthOptions;
  readonly #now: () => number;
  readonly #histogram: IntervalHistogram;
  readonly #startedAt: number;
  #lastCounters = { batchesCommitted: 0, commitFailures: 0 };
  #probing: Promise<void> | undefined;
  #lastProbeAt = -Infinity;
  #ingest: CheckResult = { ok: true };
  #last: HealthReport | undefined;

  constructor(options: HealthOptions) {
    for (const key of ['maxEventLoopLagMs', 'storeProbeIntervalMs', 'syncFailingAfterMs'] as const) {
      const v = options[key];
      if (!(typeof v === 'number' && v > 0)) throw new TypeError(`health monitor: expected ${key} > 0, got ${String(v)}`);
    }
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    this.#lastCounters = { ...options.ingestCounters() };
    this.#histogram = monitorEventLoopDelay({ resolution: 20 });
    this.#histogram.enable();
  }

  /** The last report, or a fresh one if none yet. */
  current(): HealthReport {
    return this.#last ?? this.check();
  }

  check(): HealthReport {
    const now = this.#now();
    const lagMs = Math.round(Math.max(this.#histogram.max / 1e6 - 20, 0));
    this.#histogram.reset();
    const eventLoop: CheckResult =
      lagMs <= this.#o.maxEventLoopLagMs ? { ok: true } : { ok: false, detail: `event loop lag ${lagMs} ms > ${this.#o.maxEventLoopLagMs} ms` };
    const broker: CheckResult = this.#o.brokerListening() ? { ok: true } : { ok: false, detail: 'mqtt broker is not listening' };
    const store = this.#checkWrites(now);
    const sync = this.#checkSync(now);
    const checks = { eventLoop, broker, store, ingest: this.#ingest, sync };
    const reasons = Object.entries(checks).flatMap(([name, c]) => (c.ok ? [] : [`${name}: ${c.detail ?? 'failing'}`]));
    const watchdogOk = eventLoop.ok && broker.ok && store.ok && this.#ingest.ok;
    this.#last = { healthy: watchdogOk && sync.ok, watchdogOk, reasons, eventLoopLagMs: lagMs, checks, at: now };
    return this.#last;
  }

  stop(): void {
    this.#histogram.disable();
  }

  #checkWrites(now: number): CheckResult {
    const c = this.#o.ingestCounters();
    const committed = c.batchesCommitted - this.#lastCounters.batchesCommitted;
    const failed = c.commitFailures - this.#lastCounters.commitFailures;
    this.#lastCounters = { batchesCommitted: c.batchesCommitted, commitFailures: c.commitFailures };
    if (failed > 0 && committed === 0) this.#ingest = { ok: false, detail: `${failed} group commit(s) failed since the last check` };
    else if (committed > 0 || failed === 0) this.#ingest = { ok: true };
    const writes = this.#o.store.writeHealth();
    const quietFor = now - Math.max(writes.lastOkAt ?? this.#startedAt, this.#lastProbeAt);
    if (failed > 0 || writes.failing !== null || quietFor >= this.#o.storeProbeIntervalMs) this.#probe(now);
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
    if (s === null || s.mode === 'online' || s.mode === 'stopped') return { ok: true };
    const since = s.lastSuccessAt ?? this.#startedAt;
    const failingMs = now - since;
    if (failingMs <= this.#o.syncFailingAfterMs) return { ok: true };
    const why = s.lastError ? `${s.lastError.code}: ${s.lastError.message}` : 'no successful cycle';
    return { ok: false, detail: `${s.mode} for ${Math.round(failingMs / 1000)} s (> ${Math.round(this.#o.syncFailingAfterMs / 1000)} s); last error ${why}` };
  }
}

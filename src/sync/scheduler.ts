/**
 * When cycles run (design.md §Scheduler; rules in backoff.ts). Modes: online (adaptive polling) → backoff (a failure:
 * retries after 1, 2, 4, 8, 16 s ± 20 %) → offline (after 5 failed retries: keeps buffering, probes GET /health then a
 * cycle every `probeIntervalMs`, recovers by itself) → online. RATE_LIMITED waits Retry-After. Every transition is
 * logged and visible in status(). Never two cycles at once.
 */
import { z } from 'zod';
import { GatewayError, SyncHttpError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncMode, SyncState } from '../store/sync-state.js';
import { isOffline, localChangeDelay, nextPollInterval, retryDelayMs, SEED_RETRY_DELAYS_MS } from './backoff.js';
import type { CycleReport } from './client.js';
import { Ms, validateOptions } from './options.js';

export const SchedulerConfigSchema = z
  .object({
    minIntervalMs: Ms.default(5_000),
    maxIntervalMs: Ms.default(300_000),
    criticalDebounceMs: z.number().int().nonnegative().default(250),
    maxRetries: z.number().int().nonnegative().default(5),
    retryDelaysMs: z.array(Ms).min(1).default([...SEED_RETRY_DELAYS_MS]),
    jitter: z.number().min(0).max(1).default(0.2),
    probeIntervalMs: Ms.default(30_000),
    stopTimeoutMs: z.number().int().nonnegative().default(5_000),
  })
  .refine((c) => c.minIntervalMs <= c.maxIntervalMs, { message: 'minIntervalMs must be ≤ maxIntervalMs' });
export type SchedulerConfig = z.input<typeof SchedulerConfigSchema>;

/** What the scheduler drives: SyncClient implements it. */
export interface SyncRunner {
  runCycle(): Promise<CycleReport>;
  probe(): Promise<void>;
  /** The next cycle is a full resync from last_sync null (SyncClient.requestFullResync). */
  requestFullResync?(): void;
  destroy?(): Promise<void>;
}

export interface SchedulerOptions extends SchedulerConfig {
  readonly runner: SyncRunner;
  readonly logger: Logger;
  /** Where `mode` is persisted for `status` (sync_state). */
  readonly state?: Pick<SyncState, 'set'>;
  readonly random?: () => number;
  readonly now?: () => number;
}

export interface SchedulerStatus {
  readonly mode: SyncMode;
  readonly consecutiveFailures: number;
  readonly intervalMs: number;
  readonly nextSyncAt: number | null;
  readonly syncing: boolean;
  readonly lastReport: CycleReport | null;
  readonly lastError: { code: string; message: string; at: number } | null;
  readonly lastSuccessAt: number | null;
}

export class SyncScheduler {
  readonly config: z.output<typeof SchedulerConfigSchema>;
  readonly #runner: SyncRunner;
  readonly #log: Logger;
  readonly #state: Pick<SyncState, 'set'> | undefined;
  readonly #random: () => number;
  readonly #now: () => number;
  #mode: SyncMode = 'stopped';
  #started = false;
  #timer: NodeJS.Timeout | undefined;
  #nextAt: number | null = null;
  #interval: number;
  #failures = 0;
  #inflight: Promise<CycleReport> | undefined;
  #requestedAt: number | null = null;
  #lastReport: CycleReport | null = null;
  #lastError: SchedulerStatus['lastError'] = null;
  #lastSuccessAt: number | null = null;

  constructor(options: SchedulerOptions) {
    const { runner, logger, state, random, now, ...config } = options;
    if (typeof runner?.runCycle !== 'function') throw new GatewayError('CONFIG_INVALID', 'scheduler: expected runner with runCycle()');
    this.config = validateOptions(SchedulerConfigSchema, config, 'sync scheduler options');
    this.#runner = runner;
    this.#log = logger.child({ module: 'sync-scheduler' });
    this.#state = state;
    this.#random = random ?? Math.random;
    this.#now = now ?? Date.now;
    this.#interval = this.config.minIntervalMs;
  }

  /** Starts polling with a first cycle at once. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#transition('online', 'scheduler started');
    this.#schedule(0);
  }

  /** Stops; waits for a cycle in flight up to stopTimeoutMs, then abandons it (the outbox still has every change). */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#clearTimer();
    this.#transition('stopped', 'scheduler stopped');
    const inflight = this.#inflight;
    if (inflight === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      inflight.then(() => false, () => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), this.config.stopTimeoutMs); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#log.warn({ stopTimeoutMs: this.config.stopTimeoutMs }, 'sync cycle still running at stop: abandoned (outbox keeps its changes)');
      await this.#runner.destroy?.();
    }
  }

  /** Runs a cycle now (after the one in flight, if any) and returns its report. */
  async syncNow(): Promise<CycleReport> {
    while (this.#inflight !== undefined) await this.#inflight.catch(() => undefined);
    return this.#run();
  }

  /** design.md §Scheduler: a local change brings the next sync within the min interval; a critical one syncs at once (debounced). */
  notifyLocalChange(critical = false): void {
    if (!this.#started || this.#mode !== 'online') return; // backoff/offline: keep buffering, the schedule stands
    const target = this.#now() + localChangeDelay(critical, this.config.criticalDebounceMs, this.config.minIntervalMs);
    this.#requestedAt = this.#requestedAt === null ? target : Math.min(this.#requestedAt, target);
    if (this.#inflight !== undefined) return; // picked up when the cycle in flight ends
    if (this.#nextAt === null || target < this.#nextAt) this.#schedule(target - this.#now());
  }

  status(): SchedulerStatus {
    return {
      mode: this.#mode,
      consecutiveFailures: this.#failures,
      intervalMs: this.#interval,
      nextSyncAt: this.#nextAt,
      syncing: this.#inflight !== undefined,
      lastReport: this.#lastReport,
      lastError: this.#lastError,
      lastSuccessAt: this.#lastSuccessAt,
    };
  }

  #schedule(delayMs: number): void {
    this.#clearTimer();
    if (!this.#started) return;
    const delay = Math.max(0, Math.round(delayMs));
    this.#nextAt = this.#now() + delay;
    this.#timer = setTimeout(() => this.#tick(), delay);
    this.#timer.unref?.();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextAt = null;
  }

  #tick(): void {
    this.#timer = undefined;
    this.#nextAt = null;
    if (this.#inflight !== undefined) return; // the cycle in flight reschedules when it ends
    if (this.#mode === 'offline') {
      void this.#probe();
      return;
    }
    this.#run().catch(() => undefined); // failures are handled (and logged) in #onFailure
  }

  async #probe(): Promise<void> {
    try {
      await this.#runner.probe();
    } catch (err) {
      this.#log.debug({ code: codeOf(err) }, 'offline probe failed');
      this.#schedule(this.config.probeIntervalMs);
      return;
    }
    this.#log.info('server answers the probe; trying a sync cycle');
    await this.#run().catch(() => undefined);
  }

  #run(): Promise<CycleReport> {
    this.#requestedAt = null;
    const inflight = this.#runner.runCycle().then(
      (report) => {
        this.#inflight = undefined;
        this.#onSuccess(report);
        return report;
      },
      (err: unknown) => {
        this.#inflight = undefined;
        this.#onFailure(err);
        throw err;
      },
    );
    this.#inflight = inflight;
    return inflight;
  }

  #onSuccess(report: CycleReport): void {
    this.#lastReport = report;
    this.#lastSuccessAt = this.#now();
    this.#failures = 0;
    if (this.#mode !== 'online' && this.#started) this.#transition('online', 'sync recovered');
    const moved = report.pulled + report.pushed > 0;
    this.#interval = nextPollInterval(this.#interval, moved, this.config.minIntervalMs, this.config.maxIntervalMs);
    let delay = this.#interval;
    if (this.#requestedAt !== null) delay = Math.min(delay, this.#requestedAt - this.#now());
    this.#schedule(delay);
  }

  #onFailure(err: unknown): void {
    const code = codeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    this.#lastError = { code, message, at: this.#now() };
    if (!this.#started) return;
    if (err instanceof SyncHttpError && err.code === 'RATE_LIMITED') {
      const waitMs = (err.retryAfterSeconds ?? 0) * 1000 || retryDelayMs(1, this.#random, this.config.jitter, this.config.retryDelaysMs);
      this.#log.warn({ retryAfterMs: waitMs }, 'rate limited by the server: waiting Retry-After');
      if (this.#mode === 'online') this.#transition('backoff', 'rate limited');
      this.#schedule(waitMs);
      return;
    }
    this.#failures += 1;
    if (this.#mode === 'offline' || isOffline(this.#failures, this.config.maxRetries)) {
      if (this.#mode !== 'offline') this.#transition('offline', `sync failed ${this.#failures} times: offline, buffering and probing`, { code, message });
      this.#schedule(this.config.probeIntervalMs);
      return;
    }
    const delay = retryDelayMs(this.#failures, this.#random, this.config.jitter, this.config.retryDelaysMs);
    if (this.#mode !== 'backoff') this.#transition('backoff', 'sync failed: backing off', { code, message });
    this.#log.warn({ failures: this.#failures, retryInMs: delay, code, message }, 'sync cycle failed; retry scheduled');
    this.#schedule(delay);
  }

  #transition(mode: SyncMode, why: string, extra: Record<string, unknown> = {}): void {
    const from = this.#mode;
    this.#mode = mode;
    // A full or read-only disk must not stop the schedule: the mode row is only a status mirror (issue 6 §3); a failed
    // write is logged and counted by the store and never rejects.
    void this.#state?.set('mode', mode);
    const fields = { from, to: mode, ...extra };
    if (mode === 'backoff' || mode === 'offline') this.#log.warn(fields, why);
    else this.#log.info(fields, why);
  }
}

function codeOf(err: unknown): string {
  return err instanceof GatewayError ? err.code : 'INTERNAL';
}

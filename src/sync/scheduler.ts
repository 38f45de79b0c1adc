/**
 * When sync work runs (docs/architecture.md §Scheduler; rules in backoff.ts, options in scheduler-config.ts, what it
 * reports in scheduler-status.ts). Live first: while online, the live loop (live-loop.ts) holds one live wait, so a
 * change made on the server reaches the gateway — and the device — at once; no poll runs meanwhile. Local changes
 * are pushed by the uplink (uplink.ts): critical ones after a short debounce, ordinary ones within the uplink window.
 * A server without live waits is polled adaptively between 5 s and 5 min (seed §Polling), and asked again for the
 * capability every `liveRecheckMs`.
 *
 * Modes: online → backoff (any failure — a cycle, a live wait that died or timed out, a push: retries after 1, 2, 4,
 * 8, 16 s ± 20 %, each retry a full cycle, after which live waits resume) → offline (after `maxRetries` failed retries:
 * keeps buffering, probes GET /health then a cycle every `probeIntervalMs`, recovers by itself) → online.
 * RATE_LIMITED waits Retry-After; a server that refuses a live wait (TOO_MANY_WAITS, SERVER_BUSY) is polled until its
 * Retry-After has passed. Every transition is logged and visible in status(). Never two pulls at once, never two
 * pushes at once; a full cycle runs alone.
 */
import type { z } from 'zod';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncMode, SyncState } from '../store/sync-state.js';
import { afterFailure, liveRefusalWaitMs, localChangeDelay, nextPollInterval } from './backoff.js';
import { LiveLoop } from './live-loop.js';
import { validateOptions } from './options.js';
import type { CycleReport, LiveRoundReport, PushOnlyReport } from './reports.js';
import { SchedulerConfigSchema, type SchedulerOptions, type SyncRunner } from './scheduler-config.js';
import { liveStatus, type PollingReason, type SchedulerStatus } from './scheduler-status.js';
import { Uplink } from './uplink.js';

export { SchedulerConfigSchema } from './scheduler-config.js';
export type { SchedulerConfig, SchedulerOptions, SyncRunner } from './scheduler-config.js';
export type { LiveStatus, PollingReason, SchedulerStatus } from './scheduler-status.js';

export class SyncScheduler {
  readonly config: z.output<typeof SchedulerConfigSchema>;
  readonly #runner: SyncRunner;
  readonly #log: Logger;
  readonly #state: Pick<SyncState, 'set'> | undefined;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #live: LiveLoop | undefined;
  readonly #uplink: Uplink | undefined;
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
  #pollingReason: PollingReason = 'not_online';
  /** Live waits are not tried again before this (a refusal's Retry-After, or the recheck of an unsupported server). */
  #liveRetryAt = 0;
  #reconnects = 0;
  #lostLive = false;

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
    this.#live = this.#createLiveLoop();
    this.#uplink = this.#createUplink();
    if (this.#live === undefined) this.#pollingReason = 'disabled';
  }

  /** Starts with a first full cycle at once; live waits (or polling) follow it. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#transition('online', 'scheduler started');
    this.#schedule(0);
  }

  /**
   * Stops: aborts a held live wait at once, then waits for a cycle or push in flight up to stopTimeoutMs and abandons
   * it (the outbox still has every change).
   */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#clearTimer();
    this.#uplink?.cancel();
    this.#transition('stopped', 'scheduler stopped');
    await this.#live?.stop();
    const busy = [this.#inflight, this.#uplink?.idle()].filter((p) => p !== undefined);
    if (busy.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all(busy.map((p) => p.then(() => false, () => false))).then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), this.config.stopTimeoutMs); }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#log.warn({ stopTimeoutMs: this.config.stopTimeoutMs }, 'sync work still running at stop: abandoned (outbox keeps its changes)');
      await this.#runner.destroy?.();
    }
  }

  /** Runs a full cycle now (after the work in flight; a held live wait is given up and re-opened after it). */
  async syncNow(): Promise<CycleReport> {
    await this.#live?.stop();
    await this.#uplink?.idle();
    while (this.#inflight !== undefined) await this.#inflight.catch(() => undefined);
    return this.#run();
  }

  /**
   * A local change was committed: pushed at once after the debounce when critical, within the
   * uplink window otherwise. In backoff and offline nothing is brought forward: the change is buffered.
   */
  notifyLocalChange(critical = false): void {
    if (!this.#started || this.#mode !== 'online') return; // backoff/offline: keep buffering, the schedule stands
    if (this.#uplink !== undefined) {
      this.#uplink.request(critical);
      return;
    }
    const target = this.#now() + localChangeDelay(critical, this.config.criticalDebounceMs, this.config.uplinkWindowMs);
    this.#requestedAt = this.#requestedAt === null ? target : Math.min(this.#requestedAt, target);
    if (this.#inflight !== undefined) return; // picked up when the cycle in flight ends
    if (this.#nextAt === null || target < this.#nextAt) this.#schedule(target - this.#now());
  }

  status(): SchedulerStatus {
    const mode = this.#mode;
    return {
      mode,
      ...liveStatus({ mode, live: this.#live, uplink: this.#uplink, pollingReason: this.#pollingReason, reconnects: this.#reconnects, now: this.#now() }),
      consecutiveFailures: this.#failures,
      intervalMs: this.#interval,
      nextSyncAt: this.#nextAt,
      syncing: this.#inflight !== undefined,
      lastReport: this.#lastReport,
      lastError: this.#lastError,
      lastSuccessAt: this.#lastSuccessAt,
    };
  }

  #createLiveLoop(): LiveLoop | undefined {
    const runner = this.#runner;
    const { probeLive, liveRound } = runner;
    if (!this.config.live || probeLive === undefined || liveRound === undefined) return undefined;
    return new LiveLoop({
      runner: { probeLive: () => probeLive.call(runner), liveRound: (o) => liveRound.call(runner, o) },
      waitSeconds: this.config.liveWaitSeconds,
      shutdownPauseMs: this.config.shutdownPauseMs,
      minReopenMs: this.config.minRequestSpacingMs,
      now: this.#now,
      onRound: (report) => this.#onLiveRound(report),
      onUnsupported: () => this.#onLiveUnsupported(),
      onFailure: (err) => this.#onLiveFailure(err),
    });
  }

  #createUplink(): Uplink | undefined {
    const runner = this.#runner;
    const { pushPending } = runner;
    if (pushPending === undefined) return undefined;
    return new Uplink({
      push: () => pushPending.call(runner),
      windowMs: this.config.uplinkWindowMs,
      debounceMs: this.config.criticalDebounceMs,
      minSpacingMs: this.config.minRequestSpacingMs,
      now: this.#now,
      canPush: () => this.#started && this.#mode === 'online' && this.#inflight === undefined,
      onPushed: (report) => this.#onPushed(report),
      onFailure: (err) => this.#onFailure(err),
    });
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
    if (this.#uplink?.pushing === true) {
      // A full cycle runs alone: after the push in flight.
      void this.#uplink.idle().then(() => this.#tick());
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
    this.#succeeded();
    const moved = report.pulled + report.pushed > 0;
    this.#interval = nextPollInterval(this.#interval, moved, this.config.minIntervalMs, this.config.maxIntervalMs);
    if (this.#started && this.#mode === 'online' && this.#startLive()) {
      this.#clearTimer(); // while a live wait is held, nothing polls
    } else {
      let delay = this.#interval;
      if (this.#requestedAt !== null) delay = Math.min(delay, this.#requestedAt - this.#now());
      this.#schedule(delay);
    }
    this.#uplink?.kick();
  }

  /** Success of any work: failures reset, online again. */
  #succeeded(): void {
    this.#lastSuccessAt = this.#now();
    this.#failures = 0;
    if (this.#mode !== 'online' && this.#started) this.#transition('online', 'sync recovered');
  }

  /** Starts the live loop when live waits are on and not held back; true when it runs. */
  #startLive(): boolean {
    const live = this.#live;
    if (live === undefined) return false;
    if (live.running) return true;
    if (this.#now() < this.#liveRetryAt) return false;
    if (this.#lostLive) {
      this.#reconnects += 1;
      this.#lostLive = false;
      this.#log.info({ reconnects: this.#reconnects }, 'live wait re-opened');
    }
    live.start(true);
    return true;
  }

  #onLiveRound(report: LiveRoundReport): void {
    this.#succeeded();
    if (report.end === 'shutdown') this.#log.info('the server is shutting down: reconnecting the live wait');
    // A wake with local changes pending: push them now (a pending change that met a pulled one is decided at once).
    if ((report.end === 'data' || report.end === 'change') && report.pending > 0) this.#uplink?.pushSoon();
  }

  #onLiveUnsupported(): void {
    this.#pollingReason = 'unsupported';
    this.#liveRetryAt = this.#now() + this.config.liveRecheckMs;
    this.#log.info({ recheckInMs: this.config.liveRecheckMs }, 'the server holds no live waits: polling (seed §Polling)');
    this.#schedule(this.config.minIntervalMs);
  }

  #onLiveFailure(err: unknown): void {
    const waitMs = liveRefusalWaitMs(err);
    if (waitMs !== undefined) {
      // Refused, not failed: poll until the server's Retry-After has passed, then try again.
      this.#pollingReason = 'refused';
      this.#liveRetryAt = this.#now() + waitMs;
      this.#log.warn({ code: codeOf(err), retryAfterMs: waitMs }, 'the server refused a live wait: polling meanwhile');
      this.#schedule(waitMs);
      return;
    }
    this.#lostLive = true;
    this.#onFailure(err);
  }

  #onPushed(report: PushOnlyReport): void {
    this.#succeeded();
    if (report.pushed === 0 || this.#live?.running === true) return;
    // Polling: activity brings the polls back to the minimum interval (seed §Polling, adaptive).
    this.#interval = this.config.minIntervalMs;
    if (this.#inflight === undefined && (this.#nextAt === null || this.#nextAt > this.#now() + this.#interval)) this.#schedule(this.#interval);
  }

  #onFailure(err: unknown): void {
    const code = codeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    this.#lastError = { code, message, at: this.#now() };
    if (!this.#started) return;
    this.#uplink?.cancel(); // the retry cycle pushes what is pending
    if (this.#live?.running === true) {
      this.#lostLive = true;
      void this.#live.stop();
    }
    const step = afterFailure(err, this.#failures, this.#mode === 'offline', this.config, this.#random);
    if (step.kind === 'rate_limited') {
      this.#log.warn({ retryAfterMs: step.waitMs }, 'rate limited by the server: waiting Retry-After');
      if (this.#mode === 'online') this.#transition('backoff', 'rate limited');
      this.#schedule(step.waitMs);
      return;
    }
    this.#failures = step.failures;
    if (step.kind === 'offline') {
      if (this.#mode !== 'offline') this.#transition('offline', `sync failed ${this.#failures} times: offline, buffering and probing`, { code, message });
    } else {
      if (this.#mode !== 'backoff') this.#transition('backoff', 'sync failed: backing off', { code, message });
      this.#log.warn({ failures: this.#failures, retryInMs: step.waitMs, code, message }, 'sync failed; retry scheduled');
    }
    this.#schedule(step.waitMs);
  }

  #transition(mode: SyncMode, why: string, extra: Record<string, unknown> = {}): void {
    const from = this.#mode;
    this.#mode = mode;
    // A full or read-only disk must not stop the schedule: the mode row is only a status mirror; a failed
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

/**
 * The live loop (docs/architecture.md §Scheduler; docs/protocol.md §Live waits): while it runs, the gateway holds
 * exactly one live wait — a sync_request the server keeps until the home changes (another client's push) or the wait
 * runs out — and opens the next as soon as one is answered. An answer's pages are applied and their device commands
 * published by the sync client before the loop hears of it (SyncClient.liveRound). The loop first asks the server
 * whether it holds live waits at all (GET /api/v1/health); one that does not, or that answers without `live`, ends
 * the loop and the scheduler polls instead.
 *
 * How a round ends decides what follows: `data` / `change` (a wake) and `timeout` → the next wait at once (at most one
 * open per `minReopenMs`, so a home that changes many times a second cannot drive the gateway into the server's rate
 * limit); `shutdown` (the server is stopping) → a reconnect after `shutdownPauseMs`, asking for the capability again —
 * not a failure; a transport error or a timeout (the wait plus the client's margin: a dead connection) → the loop ends
 * and the scheduler backs off. `stop()` aborts the held request at once.
 *
 * A component with start/stop; it owns no timers besides its pauses, and holds no state beyond its counters.
 */
import type { LiveSupport } from './live.js';
import { liveWaitSeconds } from './live.js';
import type { LiveRoundReport } from './reports.js';

export interface LiveRunner {
  probeLive(): Promise<LiveSupport | undefined>;
  liveRound(options: { readonly waitSeconds: number; readonly signal?: AbortSignal }): Promise<LiveRoundReport>;
}

export interface LiveLoopOptions {
  readonly runner: LiveRunner;
  /** The wait to ask for (capped by the server's maximum). */
  readonly waitSeconds: number;
  /** After a `shutdown` answer, the pause before reconnecting (the server is restarting). */
  readonly shutdownPauseMs: number;
  /** At most one live request opened per this many ms. */
  readonly minReopenMs: number;
  readonly now: () => number;
  /** Each answered round, after its changes were applied and published. */
  readonly onRound: (report: LiveRoundReport) => void;
  /** The server holds no live waits (no capability, or `wait` ignored): the loop has ended. */
  readonly onUnsupported: () => void;
  /** A probe or a round failed: the loop has ended. */
  readonly onFailure: (err: unknown) => void;
}

export interface LiveCounters {
  /** Live requests opened. */
  readonly rounds: number;
  /** Rounds answered because the home changed (`data` or `change`). */
  readonly wakes: number;
  /** `shutdown` answers: the server stopped while holding our wait, and the loop reconnected. */
  readonly shutdowns: number;
}

export class LiveLoop {
  readonly #o: LiveLoopOptions;
  #controller: AbortController | undefined;
  #done: Promise<void> | undefined;
  #heldSince: number | null = null;
  #support: LiveSupport | undefined;
  #rounds = 0;
  #wakes = 0;
  #shutdowns = 0;
  #lastEnd: LiveRoundReport['end'] | null = null;

  constructor(options: LiveLoopOptions) {
    for (const key of ['waitSeconds', 'shutdownPauseMs', 'minReopenMs'] as const) {
      const v = options[key];
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`live loop: expected ${key} ≥ 0, given ${String(v)}`);
    }
    if (!(options.waitSeconds > 0)) throw new RangeError(`live loop: expected waitSeconds > 0, given ${String(options.waitSeconds)}`);
    this.#o = options;
  }

  get running(): boolean {
    return this.#controller !== undefined;
  }

  /** Local epoch ms when the wait held now was sent; null while none is held. */
  get heldSince(): number | null {
    return this.#heldSince;
  }

  get lastEnd(): LiveRoundReport['end'] | null {
    return this.#lastEnd;
  }

  counters(): LiveCounters {
    return { rounds: this.#rounds, wakes: this.#wakes, shutdowns: this.#shutdowns };
  }

  /** Starts holding waits (no-op while running). `recheck`: ask the server for the capability again first. */
  start(recheck = false): void {
    if (this.#controller !== undefined) return;
    if (recheck) this.#support = undefined;
    const controller = new AbortController();
    this.#controller = controller;
    this.#done = this.#run(controller.signal).finally(() => {
      if (this.#controller === controller) this.#controller = undefined;
      this.#heldSince = null;
    });
  }

  /** Aborts the held request at once and resolves when the loop has ended. */
  async stop(): Promise<void> {
    const controller = this.#controller;
    if (controller === undefined) return;
    controller.abort();
    await this.#done;
  }

  async #run(signal: AbortSignal): Promise<void> {
    let openedAt = Number.NEGATIVE_INFINITY;
    try {
      while (!signal.aborted) {
        const support = this.#support ?? (await this.#o.runner.probeLive());
        if (signal.aborted) return;
        if (support === undefined) return this.#o.onUnsupported();
        this.#support = support;
        // Bounded by minReopenMs: a wall clock stepped back since the last open must not hold the wait back.
        if (!(await pause(Math.min(this.#o.minReopenMs, openedAt + this.#o.minReopenMs - this.#o.now()), signal))) return;
        openedAt = this.#o.now();
        const report = await this.#round(support, signal);
        if (signal.aborted) return;
        this.#o.onRound(report);
        if (report.end === 'unsupported') {
          this.#support = undefined;
          return this.#o.onUnsupported();
        }
        if (report.end === 'shutdown') {
          this.#shutdowns += 1;
          this.#support = undefined; // the server that comes back may be configured otherwise
          if (!(await pause(this.#o.shutdownPauseMs, signal))) return;
        }
      }
    } catch (err) {
      if (!signal.aborted) this.#o.onFailure(err);
    }
  }

  async #round(support: LiveSupport, signal: AbortSignal): Promise<LiveRoundReport> {
    this.#rounds += 1;
    this.#heldSince = this.#o.now();
    try {
      const report = await this.#o.runner.liveRound({ waitSeconds: liveWaitSeconds(support, this.#o.waitSeconds), signal });
      this.#lastEnd = report.end;
      if (report.end === 'data' || report.end === 'change') this.#wakes += 1;
      return report;
    } finally {
      this.#heldSince = null;
    }
  }
}

/** Resolves true after `ms` (at once when ≤ 0), false as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort);
  });
}

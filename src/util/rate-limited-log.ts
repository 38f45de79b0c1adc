/**
 * Counts events by reason and logs at most one line per reason per interval, carrying the number of events since
 * the previous line: garbage on the MQTT port, malformed payloads, failing commits, refused requests on the sync
 * server or clock steps must never flood the journal.
 */
import type { Logger } from '../log.js';

export type RateLimitedLevel = 'warn' | 'info' | 'debug' | 'error';

export interface RateLimitedLogOptions {
  readonly logger: Logger;
  /** Minimum time between two lines for the same reason; default 10 s. */
  readonly intervalMs?: number;
  readonly level?: RateLimitedLevel;
  /** Injected clock (epoch ms); defaults to Date.now. */
  readonly now?: () => number;
}

interface ReasonState {
  total: number;
  sinceLastLine: number;
  lastLineAt: number;
}

export class RateLimitedLog {
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly level: RateLimitedLevel;
  private readonly now: () => number;
  private readonly reasons = new Map<string, ReasonState>();

  constructor(options: RateLimitedLogOptions) {
    const intervalMs = options.intervalMs ?? 10_000;
    if (!Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new RangeError(`RateLimitedLog: intervalMs must be a finite number >= 0, given ${String(options.intervalMs)}`);
    }
    this.logger = options.logger;
    this.intervalMs = intervalMs;
    this.level = options.level ?? 'warn';
    this.now = options.now ?? Date.now;
  }

  /** Counts one event; logs a line when this reason has not been logged within the interval. */
  record(reason: string, message: string, detail: Record<string, unknown> = {}): void {
    const at = this.now();
    let state = this.reasons.get(reason);
    if (!state) {
      state = { total: 0, sinceLastLine: 0, lastLineAt: Number.NEGATIVE_INFINITY };
      this.reasons.set(reason, state);
    }
    state.total += 1;
    state.sinceLastLine += 1;
    if (at - state.lastLineAt < this.intervalMs) return;
    this.logger[this.level]({ ...detail, reason, count: state.sinceLastLine, total: state.total }, message);
    state.sinceLastLine = 0;
    state.lastLineAt = at;
  }

  /** Total events per reason since construction. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [reason, state] of this.reasons) out[reason] = state.total;
    return out;
  }

  total(reason: string): number {
    return this.reasons.get(reason)?.total ?? 0;
  }

  /** Logs the events that were counted but not yet reported (call on stop). */
  flush(message = 'suppressed events since the last line'): void {
    for (const [reason, state] of this.reasons) {
      if (state.sinceLastLine === 0) continue;
      this.logger[this.level]({ reason, count: state.sinceLastLine, total: state.total }, message);
      state.sinceLastLine = 0;
      state.lastLineAt = this.now();
    }
  }
}

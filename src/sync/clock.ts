/**
 * Server-corrected clock (docs/architecture.md §Time): offset = server_time − midpoint(send, receive), estimated from
 * each sync_request round trip. Among recent samples the one with the lowest round-trip time is the most trustworthy
 * (its midpoint error is at most RTT/2); small moves are smoothed, a large step (first sample, an RTC-less Pi that
 * booted in 1970, a clock stepped by NTP) is taken at once. The offset is persisted: a restart stamps right at once.
 *
 * The HTTP `Date` header of the same response (RFC 9110 §6.6.1: the server's clock, 1 s resolution) is a sanity
 * bound: a server_time that disagrees with it by more than `maxDateDisagreementMs` (beyond the round trip and the
 * header's resolution) is not adopted — a server_time can run ahead of the server's clock (a watermark issued before
 * its clock stepped back), and a gateway that followed it would stamp in the future and sign stale requests. Such
 * samples are counted and logged rate-limited; with no estimate yet, the Date header's own estimate is taken.
 */
import type { Logger } from '../log.js';
import type { Micros } from '../protocol/index.js';
import type { SyncState } from '../store/sync-state.js';
import type { StampClock } from '../store/types.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';

const PERSIST_THRESHOLD_MS = 10;
/** The Date header has whole seconds: the server's clock was in [date, date + 1 s) when it was written. */
const DATE_RESOLUTION_MS = 1000;

export interface ClockSample {
  readonly offsetMs: number;
  readonly rttMs: number;
  readonly atMs: number;
}

export interface ServerClockOptions {
  /** Local wall clock, epoch ms (injected so tests can skew it). */
  readonly now?: () => number;
  /** Where the offset is persisted (the store's sync state), so a restart stamps correctly at once. */
  readonly state?: Pick<SyncState, 'get' | 'set'>;
  readonly logger: Logger;
  /** How many recent samples to keep (default 8). */
  readonly window?: number;
  /** Weight of a new estimate when smoothing (default 0.3). */
  readonly smoothing?: number;
  /**
   * A monotonic clock in ms (the daemon passes `performance.now`): a step of the local wall clock between two samples
   * (an RTC-less Pi setting its time, NTP stepping it) is noticed at once and the offset follows it, so stamps stay in
   * server time while no sample arrives (a held live wait gives one only when it is answered). Without it, only
   * samples move the offset.
   */
  readonly monotonic?: () => number;
  /** A difference larger than this is a clock step, taken at once (default 1000 ms). */
  readonly stepMs?: number;
  /**
   * Called with the change of offset (ms) when the estimate steps (first estimate, or a clock step): changes stamped
   * before it were stamped with the old offset, and the client re-bases the pending ones (SyncOutbox.rebasePending).
   */
  readonly onStep?: (deltaMs: number) => void;
  /**
   * A server_time whose offset is further than this from the range the HTTP Date header allows (the round trip plus
   * the header's 1 s resolution) is not adopted (default 5000 ms).
   */
  readonly maxDateDisagreementMs?: number;
  /** At most one clock-step or disagreement line per reason this often; the line carries the count (default 60 s). */
  readonly warnIntervalMs?: number;
}

/** What the clock did with its samples since it was made (gateway metrics and status). */
export interface ClockStats {
  /** Samples adopted (smoothed in or stepped to). */
  readonly samples: number;
  /** Of which steps (the offset moved by more than stepMs at once). */
  readonly steps: number;
  /** server_time samples not adopted because they disagreed with the HTTP Date header. */
  readonly rejected: number;
}

/**
 * Pure: how far (ms) an offset estimate lies outside the range the HTTP Date header allows: the server's clock read
 * `dateMs` (truncated to the second) at some local instant between `sentMs` and `receivedMs`. 0 when inside.
 */
export function dateDisagreementMs(offsetMs: number, dateMs: number, sentMs: number, receivedMs: number): number {
  const low = dateMs - Math.max(sentMs, receivedMs);
  const high = dateMs + DATE_RESOLUTION_MS - Math.min(sentMs, receivedMs);
  return offsetMs < low ? low - offsetMs : offsetMs > high ? offsetMs - high : 0;
}

/** Pure estimate: the lowest-RTT sample of the window (ties: the most recent). */
export function bestSample(samples: readonly ClockSample[]): ClockSample | undefined {
  let best: ClockSample | undefined;
  for (const sample of samples) {
    if (best === undefined || sample.rttMs < best.rttMs || (sample.rttMs === best.rttMs && sample.atMs > best.atMs)) {
      best = sample;
    }
  }
  return best;
}

/** Pure: one round trip's offset, server time minus the midpoint of send and receive (all epoch ms). */
export function offsetOf(serverMs: number, sentMs: number, receivedMs: number): ClockSample {
  const rttMs = Math.max(0, receivedMs - sentMs);
  return { offsetMs: serverMs - (sentMs + rttMs / 2), rttMs, atMs: receivedMs };
}

export class ServerClock implements StampClock {
  readonly #now: () => number;
  readonly #state: Pick<SyncState, 'get' | 'set'> | undefined;
  readonly #log: Logger;
  readonly #window: number;
  readonly #smoothing: number;
  readonly #stepMs: number;
  readonly #samples: ClockSample[] = [];
  readonly #onStep: Array<(deltaMs: number) => void> = [];
  readonly #maxDateDisagreementMs: number;
  readonly #warnings: RateLimitedLog;
  #stats = { samples: 0, steps: 0, rejected: 0 };
  #offsetMs: number;
  #persistedMs: number;
  #known: boolean;
  readonly #monotonic: (() => number) | undefined;
  /** The wall clock and the monotonic clock read together last (step detection). */
  #anchor: { wall: number; mono: number } | undefined;

  constructor(options: ServerClockOptions) {
    this.#now = options.now ?? Date.now;
    this.#monotonic = options.monotonic;
    this.#state = options.state;
    this.#log = options.logger.child({ module: 'clock' });
    this.#window = options.window ?? 8;
    this.#smoothing = options.smoothing ?? 0.3;
    this.#stepMs = options.stepMs ?? 1000;
    if (options.onStep) this.#onStep.push(options.onStep);
    this.#maxDateDisagreementMs = options.maxDateDisagreementMs ?? 5000;
    if (!(this.#maxDateDisagreementMs >= 0)) {
      throw new RangeError(`ServerClock: maxDateDisagreementMs must be >= 0, given ${String(options.maxDateDisagreementMs)}`);
    }
    this.#warnings = new RateLimitedLog({ logger: this.#log, intervalMs: options.warnIntervalMs ?? 60_000, level: 'warn', now: this.#now });
    const saved = options.state?.get('clock_offset_ms');
    this.#offsetMs = saved ?? 0;
    this.#persistedMs = saved ?? Number.NaN;
    this.#known = saved !== undefined;
  }

  /** Local wall clock (uncorrected), epoch ms. */
  localNowMs(): number {
    return this.#now();
  }

  nowMs(): number {
    const wall = this.#now();
    this.#followLocalStep(wall);
    return wall + this.#offsetMs;
  }

  /** A local wall-clock step since the last reading (against the monotonic clock) moves the offset the other way. */
  #followLocalStep(wall: number): void {
    if (this.#monotonic === undefined) return;
    const mono = this.#monotonic();
    const anchor = this.#anchor;
    this.#anchor = { wall, mono };
    if (anchor === undefined || !this.#known) return;
    const stepMs = wall - (anchor.wall + (mono - anchor.mono));
    if (Math.abs(stepMs) <= this.#stepMs) return;
    this.#offsetMs -= stepMs;
    this.#samples.length = 0; // round trips measured on the old wall clock
    this.#stats.steps += 1;
    this.#warnings.record('local_step', 'local clock stepped: the server offset follows it until the next sample', { stepMs: Math.round(stepMs) });
    this.#persist();
  }

  nowMicros(): Micros {
    return Math.round(this.nowMs() * 1000);
  }

  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** Whether any estimate exists (from a sample or persisted). */
  get known(): boolean {
    return this.#known;
  }

  /** Adds a listener for steps of the estimate (see ServerClockOptions.onStep). */
  onStep(listener: (deltaMs: number) => void): void {
    this.#onStep.push(listener);
  }

  get stats(): ClockStats {
    return { ...this.#stats };
  }

  /**
   * Feeds one round trip: local epoch ms at send and receive, the server's time in µs, and the response's HTTP
   * `Date` header as epoch ms when it had one.
   */
  observe(serverMicros: Micros, sentMs: number, receivedMs: number, dateMs?: number): void {
    let sample = offsetOf(serverMicros / 1000, sentMs, receivedMs);
    if (dateMs !== undefined && Number.isFinite(dateMs)) {
      const off = dateDisagreementMs(sample.offsetMs, dateMs, sentMs, receivedMs);
      if (off > this.#maxDateDisagreementMs) {
        this.#stats.rejected += 1;
        this.#warnings.record('date_disagreement', 'server_time disagrees with the HTTP Date header: not adopted', {
          serverTime: new Date(serverMicros / 1000).toISOString(),
          date: new Date(dateMs).toISOString(),
          disagreementMs: Math.round(off),
        });
        if (this.#known) return;
        // No estimate yet: the Date header's own (±0.5 s plus half the round trip) beats none.
        sample = offsetOf(dateMs + DATE_RESOLUTION_MS / 2, sentMs, receivedMs);
      }
    }
    this.#adopt(sample);
  }

  #adopt(sample: ClockSample): void {
    const previous = this.#offsetMs;
    this.#stats.samples += 1;
    if (!this.#known || Math.abs(sample.offsetMs - previous) > this.#stepMs + sample.rttMs / 2) {
      if (this.#known) {
        this.#stats.steps += 1;
        this.#warnings.record('step', 'clock step: server offset re-estimated', {
          from: Math.round(previous),
          to: Math.round(sample.offsetMs),
        });
      }
      this.#samples.length = 0;
      this.#samples.push(sample);
      this.#offsetMs = sample.offsetMs;
      for (const listener of this.#onStep) listener(sample.offsetMs - previous);
    } else {
      this.#samples.push(sample);
      if (this.#samples.length > this.#window) this.#samples.shift();
      const best = bestSample(this.#samples) ?? sample;
      this.#offsetMs = previous + this.#smoothing * (best.offsetMs - previous);
    }
    if (!this.#known) this.#log.info({ offsetMs: Math.round(this.#offsetMs), rttMs: sample.rttMs }, 'server clock offset estimated');
    this.#known = true;
    this.#persist();
  }

  /** Persists only real moves (each write is an fsync on the Pi's SD card); a few ms lost on restart do not matter. */
  #persist(): void {
    if (Number.isNaN(this.#persistedMs) || Math.abs(this.#offsetMs - this.#persistedMs) >= PERSIST_THRESHOLD_MS) {
      void this.#state?.set('clock_offset_ms', this.#offsetMs);
      this.#persistedMs = this.#offsetMs;
    }
  }
}

/**
 * Server-corrected clock (design.md §Clock): offset = server_time − midpoint(send, receive), estimated from each
 * sync_request round trip. Among recent samples the one with the lowest round-trip time is the most trustworthy (its
 * midpoint error is at most RTT/2); small moves are smoothed, a large step (first sample, an RTC-less Pi that booted
 * in 1970, a clock stepped by NTP) is taken at once. The offset is persisted so a restart stamps correctly at once.
 */
import type { Logger } from '../log.js';
import type { Micros } from '../protocol/index.js';
import type { SyncState } from '../store/sync-state.js';
import type { StampClock } from '../store/types.js';

const PERSIST_THRESHOLD_MS = 10;

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
  /** A difference larger than this is a clock step, taken at once (default 1000 ms). */
  readonly stepMs?: number;
  /**
   * Called with the change of offset (ms) when the estimate steps (first estimate, or a clock step): changes stamped
   * before it were stamped with the old offset, and the client re-bases the pending ones (SyncOutbox.rebasePending).
   */
  readonly onStep?: (deltaMs: number) => void;
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
  #offsetMs: number;
  #persistedMs: number;
  #known: boolean;

  constructor(options: ServerClockOptions) {
    this.#now = options.now ?? Date.now;
    this.#state = options.state;
    this.#log = options.logger.child({ module: 'clock' });
    this.#window = options.window ?? 8;
    this.#smoothing = options.smoothing ?? 0.3;
    this.#stepMs = options.stepMs ?? 1000;
    if (options.onStep) this.#onStep.push(options.onStep);
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
    return this.#now() + this.#offsetMs;
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

  /** Feeds one round trip (local epoch ms at send and receive, and the server's time in µs). */
  observe(serverMicros: Micros, sentMs: number, receivedMs: number): void {
    const sample = offsetOf(serverMicros / 1000, sentMs, receivedMs);
    const previous = this.#offsetMs;
    if (!this.#known || Math.abs(sample.offsetMs - previous) > this.#stepMs + sample.rttMs / 2) {
      if (this.#known) this.#log.warn({ from: previous, to: sample.offsetMs }, 'clock step: server offset re-estimated');
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
    // Persist only real moves (each write is an fsync on the Pi's SD card); a few ms lost on restart do not matter.
    if (Number.isNaN(this.#persistedMs) || Math.abs(this.#offsetMs - this.#persistedMs) >= PERSIST_THRESHOLD_MS) {
      void this.#state?.set('clock_offset_ms', this.#offsetMs);
      this.#persistedMs = this.#offsetMs;
    }
  }
}

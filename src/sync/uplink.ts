/**
 * When local changes are pushed (seed §Polling "Instant push for critical changes"): a critical
 * change (locks, alarms, smoke, leaks: ingest's policy) after `debounceMs`, an ordinary one within `windowMs` of its
 * arrival — every change in between rides along, so a busy home costs one push per window, not one per message. The
 * push is the push phase alone (SyncClient.pushPending); while a live wait is held it goes on another connection.
 *
 * One push at a time, at most one started per `minSpacingMs`; a change that arrives during a push is pushed after it
 * (the push took what was pending when it began). `canPush()` lets the scheduler hold pushes back while a full cycle
 * runs (its own push phase takes them); it calls `kick()` when that is over.
 */
import type { PushOnlyReport } from './reports.js';

export interface UplinkOptions {
  readonly push: () => Promise<PushOnlyReport>;
  readonly windowMs: number;
  readonly debounceMs: number;
  readonly minSpacingMs: number;
  readonly now: () => number;
  readonly canPush: () => boolean;
  readonly onPushed: (report: PushOnlyReport) => void;
  /** The push failed; nothing is scheduled any more until `request`/`pushSoon` (the outbox keeps every change). */
  readonly onFailure: (err: unknown) => void;
}

export class Uplink {
  readonly #o: UplinkOptions;
  #dueAt: number | null = null;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #lastStartAt = Number.NEGATIVE_INFINITY;
  #pushes = 0;

  constructor(options: UplinkOptions) {
    for (const key of ['windowMs', 'debounceMs', 'minSpacingMs'] as const) {
      const v = options[key];
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`uplink: expected ${key} ≥ 0, given ${String(v)}`);
    }
    this.#o = options;
  }

  /** When the next push is due (local epoch ms), or null. */
  get dueAt(): number | null {
    return this.#dueAt;
  }

  get pushing(): boolean {
    return this.#inflight !== undefined;
  }

  get pushes(): number {
    return this.#pushes;
  }

  /** A local change was committed: push it within the debounce (critical) or the window (ordinary). */
  request(critical: boolean): void {
    this.#due(this.#o.now() + (critical ? this.#o.debounceMs : this.#o.windowMs));
  }

  /** Push what is pending now (after a wake: a pending change that met a pulled one is decided sooner). */
  pushSoon(): void {
    this.#due(this.#o.now());
  }

  /** Re-checks a due push (the scheduler's cycle that held it back has ended). */
  kick(): void {
    if (this.#dueAt !== null) this.#arm();
  }

  /** Forgets what is due (failure, offline, stop); the outbox keeps every change for the next cycle. */
  cancel(): void {
    this.#dueAt = null;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Resolves when no push is in flight. */
  async idle(): Promise<void> {
    while (this.#inflight !== undefined) await this.#inflight;
  }

  #due(at: number): void {
    if (this.#dueAt === null || at < this.#dueAt) {
      this.#dueAt = at;
      this.#arm();
    }
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#dueAt === null || this.#inflight !== undefined) return; // a push in flight re-arms when it ends
    const now = this.#o.now();
    // The wall clock stepped back (an RTC-less Pi setting its time, NTP): times taken before the step lie in its
    // future and would hold the push back by the size of the step. Bound both by what they can mean.
    this.#lastStartAt = Math.min(this.#lastStartAt, now);
    this.#dueAt = Math.min(this.#dueAt, now + Math.max(this.#o.debounceMs, this.#o.windowMs));
    const at = Math.max(this.#dueAt, this.#lastStartAt + this.#o.minSpacingMs);
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - now));
    this.#timer.unref?.();
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#dueAt === null || this.#inflight !== undefined) return;
    if (!this.#o.canPush()) return; // the scheduler kicks when its cycle is over
    this.#dueAt = null;
    this.#lastStartAt = this.#o.now();
    this.#pushes += 1;
    this.#inflight = this.#o.push().then(
      (report) => {
        this.#inflight = undefined;
        this.#o.onPushed(report);
        this.#arm();
      },
      (err: unknown) => {
        this.#inflight = undefined;
        this.#o.onFailure(err);
        this.#arm();
      },
    );
  }
}

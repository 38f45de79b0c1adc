/**
 * A shared timer for held requests: deadlines are bucketed by tick (`tickMs`), and ONE interval, running only while
 * something is scheduled, expires whole buckets. Ten thousand held waits cost a Map entry per occupied tick and a
 * Set slot each, not ten thousand timers. Deadlines are on a monotonic clock (a wall clock stepped by NTP or a test
 * must not expire or prolong a hold) and fire within one tick after they are due.
 */
export interface Expirable {
  /** Called once when the deadline passes, unless the item was removed before. */
  expire(): void;
  /** The wheel's bookkeeping (the item's bucket), kept on the item: no map entry per scheduled item. */
  wheelTick: number | undefined;
}

export interface TimerWheelOptions {
  /** Bucket width and interval period in ms (default 100). */
  readonly tickMs?: number;
  /** Monotonic ms (default performance.now). */
  readonly now?: () => number;
}

export class TimerWheel<T extends Expirable> {
  private readonly tickMs: number;
  private readonly now: () => number;
  private readonly buckets = new Map<number, Set<T>>();
  private count = 0;
  /** The first tick not yet expired. */
  private cursor: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: TimerWheelOptions = {}) {
    const tickMs = options.tickMs ?? 100;
    if (!(Number.isInteger(tickMs) && tickMs >= 1)) throw new RangeError(`tickMs: expected an integer >= 1, got ${String(tickMs)}`);
    this.tickMs = tickMs;
    this.now = options.now ?? (() => performance.now());
    this.cursor = this.currentTick();
  }

  /** Schedules `item` to expire `delayMs` from now (rounded up to the next tick). */
  add(item: T, delayMs: number): void {
    this.remove(item);
    if (this.count === 0) this.cursor = this.currentTick(); // idle until now: nothing is due before this tick
    const tick = Math.max(this.cursor, Math.ceil((this.now() + Math.max(0, delayMs)) / this.tickMs));
    let bucket = this.buckets.get(tick);
    if (bucket === undefined) {
      bucket = new Set();
      this.buckets.set(tick, bucket);
    }
    bucket.add(item);
    item.wheelTick = tick;
    this.count += 1;
    this.start();
  }

  /** Unschedules `item`; a no-op when it is not scheduled. */
  remove(item: T): void {
    const tick = item.wheelTick;
    if (tick === undefined) return;
    item.wheelTick = undefined;
    const bucket = this.buckets.get(tick);
    if (bucket?.delete(item) === true) this.count -= 1;
    if (bucket?.size === 0) this.buckets.delete(tick);
    if (this.count === 0) this.stop();
  }

  /** Items scheduled. */
  get size(): number {
    return this.count;
  }

  /** Calls `fn` for every scheduled item (it may remove items meanwhile). */
  forEach(fn: (item: T) => void): void {
    for (const bucket of [...this.buckets.values()]) for (const item of bucket) fn(item);
  }

  /** Expires every bucket that is due (the interval calls it; tests may too). */
  advance(): void {
    const due = this.currentTick();
    for (; this.cursor <= due; this.cursor++) {
      const bucket = this.buckets.get(this.cursor);
      if (bucket === undefined) continue;
      this.buckets.delete(this.cursor);
      for (const item of bucket) {
        item.wheelTick = undefined;
        this.count -= 1;
        item.expire();
      }
    }
    if (this.count === 0) this.stop();
  }

  /** Unschedules everything without expiring it. */
  clear(): void {
    for (const bucket of this.buckets.values()) for (const item of bucket) item.wheelTick = undefined;
    this.buckets.clear();
    this.count = 0;
    this.stop();
  }

  private currentTick(): number {
    return Math.floor(this.now() / this.tickMs);
  }

  private start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.advance(), this.tickMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

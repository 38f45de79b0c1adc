/**
 * Group commit (docs/architecture.md §Durability): items submitted within a window (or until the batch is full) are
 * committed together in one transaction — one fsync for many messages — and then every waiter is called back. One
 * commit is in flight at a time: what arrives meanwhile forms the next batch, which is committed once the current one
 * has returned and its own window has passed (so batches grow with the load, and per-device order is kept). A failed
 * commit calls its waiters back with the error (a QoS 1 message is then not acknowledged); the next batch simply
 * tries again, so the writer recovers by itself when the disk works again. A failure that is not about the disk (one
 * bad item) is isolated by committing the batch's items one by one, so one poison message cannot hold back
 * everybody else's.
 *
 * Items without a waiter (QoS 0: nothing is acknowledged) may wait longer (`relaxedWindowMs`) and a batch made only
 * of them is committed without fsync (`durable: false`): at a home's trickle of messages this turns one fsync per
 * message into one write per window (docs/architecture.md §Disk writes). A waiter arriving shortens the wait to
 * `windowMs`, and the batch it joins is durable; items stay in arrival order either way.
 *
 * `commit` may return a promise (the store's writer) or return synchronously (tests); waiters of a synchronous
 * commit are called before `flush()` returns. A commit may also answer per item (an error for each item it refused),
 * isolating failures itself; then up to `maxInflight` commits may be in flight at once — the writer runs them in
 * order, so the next batch is already queued when one returns and the writer never waits for the main thread.
 */
import { GatewayError } from '../errors.js';
import { isStoreWideError } from '../store/writer.js';

export type CommitDone = (err: Error | null) => void;

/** A commit's answer per item: null when committed, the error when that item alone was refused. */
export type ItemResults = ReadonlyArray<Error | null>;

export interface GroupCommitOptions<T> {
  /** How long the first item of a batch waits for company; 0 = until the current I/O phase ends. */
  readonly windowMs: number;
  /** A batch this large is committed at once (or as soon as the commit in flight returns). */
  readonly maxBatch: number;
  /** How long a batch of waiter-less items (QoS 0) may wait; default windowMs. */
  readonly relaxedWindowMs?: number;
  /**
   * Commits the items in one transaction; throws (or rejects) when nothing was committed. `durable` is true when any
   * item has a waiter (its acknowledgement needs the fsync).
   */
  readonly commit: (items: readonly T[], durable: boolean) => void | ItemResults | Promise<void | ItemResults>;
  readonly onFailure?: (err: Error, items: number) => void;
  /**
   * Commits in flight at most (default 1). More than one only with a commit that answers per item: a failure it
   * throws is then not retried item by item (a later batch may have committed meanwhile), its waiters get the error.
   */
  readonly maxInflight?: number;
}

/** What a commit came to: undefined (all committed), per-item results, or the error that refused the whole batch. */
type Outcome = undefined | ItemResults | Error;
type Settled = Outcome | Promise<Outcome>;

export class GroupCommit<T> {
  readonly #options: GroupCommitOptions<T>;
  #items: T[] = [];
  #waiters: Array<CommitDone | undefined> = [];
  #timer: { kind: 'timeout'; handle: NodeJS.Timeout } | { kind: 'immediate'; handle: NodeJS.Immediate } | undefined;
  /** When the pending timer fires (epoch ms); -Infinity for an immediate. */
  #dueAt = 0;
  #durable = false;
  #closed = false;
  /** Commits in flight (with their item-by-item retries). */
  readonly #inflight = new Set<Promise<void>>();
  /** A flush was asked for while a commit was in flight: run it when that one returns. */
  #flushAfter = false;

  constructor(options: GroupCommitOptions<T>) {
    if (!Number.isFinite(options.windowMs) || options.windowMs < 0 || options.windowMs > 1000) {
      throw new RangeError(`group commit: windowMs must be within 0..1000, given ${String(options.windowMs)}`);
    }
    if (options.maxInflight !== undefined && (!Number.isInteger(options.maxInflight) || options.maxInflight < 1 || options.maxInflight > 8)) {
      throw new RangeError(`group commit: maxInflight must be an integer within 1..8, given ${String(options.maxInflight)}`);
    }
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new RangeError(`group commit: maxBatch must be an integer >= 1, given ${String(options.maxBatch)}`);
    }
    const relaxed = options.relaxedWindowMs ?? options.windowMs;
    if (!Number.isFinite(relaxed) || relaxed < options.windowMs || relaxed > 10_000) {
      throw new RangeError(`group commit: relaxedWindowMs must be within windowMs..10000, given ${String(options.relaxedWindowMs)}`);
    }
    this.#options = options;
  }

  /**
   * Queues an item; `done` (if any) is called after its batch committed or failed. An `urgent` item (a critical
   * change: a smoke alarm, a lock) does not wait for the window: its batch is committed now (after the one in flight).
   */
  submit(item: T, done?: CommitDone, urgent = false): void {
    if (this.#closed) {
      done?.(new GatewayError('NOT_ACKNOWLEDGED', 'group commit is closed (the gateway is stopping)'));
      return;
    }
    this.#items.push(item);
    this.#waiters.push(done);
    if (done !== undefined) this.#durable = true;
    if (urgent || this.#items.length >= this.#options.maxBatch) {
      this.flush();
      return;
    }
    const wait = this.#durable ? this.#options.windowMs : (this.#options.relaxedWindowMs ?? this.#options.windowMs);
    if (this.#timer !== undefined && this.#dueAt <= Date.now() + wait) return;
    this.#clearTimer();
    if (wait === 0) {
      this.#dueAt = -Infinity;
      this.#timer = { kind: 'immediate', handle: setImmediate(() => this.flush()) };
    } else {
      this.#dueAt = Date.now() + wait;
      this.#timer = { kind: 'timeout', handle: setTimeout(() => this.flush(), wait) };
    }
  }

  pending(): number {
    return this.#items.length;
  }

  /** Commits what is queued now (once fewer than maxInflight commits are in flight). */
  flush(): void {
    this.#clearTimer();
    if (this.#items.length === 0) return;
    if (this.#inflight.size >= (this.#options.maxInflight ?? 1)) {
      this.#flushAfter = true;
      return;
    }
    // At most maxBatch items per commit (more may have queued while one was in flight); the rest go next.
    const max = this.#options.maxBatch;
    const items = this.#items.length > max ? this.#items.slice(0, max) : this.#items;
    const waiters = this.#items.length > max ? this.#waiters.slice(0, max) : this.#waiters;
    this.#items = this.#items.length > max ? this.#items.slice(max) : [];
    this.#waiters = this.#waiters.length > max ? this.#waiters.slice(max) : [];
    const durable = waiters.some((w) => w !== undefined);
    this.#durable = this.#waiters.some((w) => w !== undefined);
    if (this.#items.length > 0) this.#flushAfter = true;
    const settled = this.#tryCommit(items, durable);
    if (!(settled instanceof Promise)) {
      void this.#finish(items, waiters, settled);
      this.#flushIfAsked();
      return;
    }
    const running: Promise<void> = settled
      .then((outcome) => this.#finish(items, waiters, outcome))
      .finally(() => {
        this.#inflight.delete(running);
        this.#flushIfAsked();
      });
    this.#inflight.add(running);
    this.#flushIfAsked(); // with room for another commit in flight, the rest need not wait for this one
  }

  #flushIfAsked(): void {
    if (!this.#flushAfter || this.#inflight.size >= (this.#options.maxInflight ?? 1)) return;
    this.#flushAfter = false;
    this.flush();
  }

  /** Resolves once nothing is queued or in flight. */
  async drain(): Promise<void> {
    while (this.#inflight.size > 0 || this.#items.length > 0) {
      if (this.#inflight.size === 0) this.flush();
      await Promise.all([...this.#inflight]);
    }
  }

  /** Commits what is queued, refuses further items, and resolves once everything has committed (or failed). */
  close(): Promise<void> {
    this.flush();
    this.#closed = true;
    return this.drain();
  }

  /** Calls the waiters of a committed batch, or isolates the failure (item by item unless it is store-wide). */
  #finish(items: readonly T[], waiters: ReadonlyArray<CommitDone | undefined>, outcome: Outcome): void | Promise<void> {
    if (outcome === undefined) {
      for (const done of waiters) done?.(null);
      return;
    }
    if (!(outcome instanceof Error)) {
      for (const err of outcome) if (err !== null) this.#options.onFailure?.(err, 1);
      waiters.forEach((done, i) => done?.(outcome[i] ?? null));
      return;
    }
    const err = outcome;
    this.#options.onFailure?.(err, items.length);
    if (items.length === 1 || isStoreWideError(err) || (this.#options.maxInflight ?? 1) > 1) {
      for (const done of waiters) done?.(err);
      return;
    }
    return this.#oneByOne(items, waiters);
  }

  #oneByOne(items: readonly T[], waiters: ReadonlyArray<CommitDone | undefined>): void | Promise<void> {
    for (let i = 0; i < items.length; i += 1) {
      const settled = this.#tryCommit([items[i] as T], waiters[i] !== undefined);
      const report = (single: Outcome): void => {
        const err = single instanceof Error ? single : (single?.[0] ?? null);
        if (err !== null) this.#options.onFailure?.(err, 1);
        waiters[i]?.(err);
      };
      if (settled instanceof Promise) {
        // The rest continue after this one: the order of a device's messages is kept.
        return settled.then((single) => {
          report(single);
          return this.#oneByOne(items.slice(i + 1), waiters.slice(i + 1));
        });
      }
      report(settled);
    }
    return undefined;
  }

  #tryCommit(items: readonly T[], durable: boolean): Settled {
    try {
      const result = this.#options.commit(items, durable);
      if (result instanceof Promise) return result.then((r) => r ?? undefined, (err: unknown) => asError(err));
      return result ?? undefined;
    } catch (err) {
      return asError(err);
    }
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    if (this.#timer.kind === 'timeout') clearTimeout(this.#timer.handle);
    else clearImmediate(this.#timer.handle);
    this.#timer = undefined;
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}


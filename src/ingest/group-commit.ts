/**
 * Group commit (design.md §Durable ingest): items submitted within a window (or until the batch is full) are
 * committed together in one transaction — one fsync for many messages — and then every waiter is called back.
 * A failed commit calls its waiters back with the error (a QoS 1 message is then not acknowledged); the next batch
 * simply tries again, so the writer recovers by itself when the disk works again. A failure that is not about the
 * disk (one bad item) is isolated by committing the batch's items one by one, so one poison message cannot hold
 * back everybody else's.
 *
 * Items without a waiter (QoS 0: nothing is acknowledged) may wait longer (`relaxedWindowMs`) and a batch made only
 * of them is committed without fsync (`durable: false`): at a home's trickle of messages this turns one fsync per
 * message into one write per second (docs/architecture.md §Disk writes). A waiter arriving shortens the wait to
 * `windowMs`, and the batch it joins is durable; items stay in arrival order either way.
 */
export type CommitDone = (err: Error | null) => void;

export interface GroupCommitOptions<T> {
  /** How long the first item of a batch waits for company; 0 = until the current I/O phase ends. */
  readonly windowMs: number;
  /** A batch this large is committed at once. */
  readonly maxBatch: number;
  /** How long a batch of waiter-less items (QoS 0) may wait; default windowMs. */
  readonly relaxedWindowMs?: number;
  /**
   * Commits the items in one transaction; throws when nothing was committed. `durable` is true when any item has a
   * waiter (its acknowledgement needs the fsync).
   */
  readonly commit: (items: readonly T[], durable: boolean) => void;
  readonly onFailure?: (err: Error, items: number) => void;
}

/** SQLite errors that are about the store as a whole: retrying item by item would only fail again. */
const STORE_WIDE = /^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CANTOPEN|NOTADB|CORRUPT|PROTOCOL|NOMEM)/;

export class GroupCommit<T> {
  readonly #options: GroupCommitOptions<T>;
  #items: T[] = [];
  #waiters: Array<CommitDone | undefined> = [];
  #timer: { kind: 'timeout'; handle: NodeJS.Timeout } | { kind: 'immediate'; handle: NodeJS.Immediate } | undefined;
  /** When the pending timer fires (epoch ms); Infinity for an immediate. */
  #dueAt = 0;
  #durable = false;
  #closed = false;

  constructor(options: GroupCommitOptions<T>) {
    if (!Number.isFinite(options.windowMs) || options.windowMs < 0 || options.windowMs > 1000) {
      throw new RangeError(`group commit: windowMs must be within 0..1000, given ${String(options.windowMs)}`);
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

  /** Queues an item; `done` (if any) is called after its batch committed or failed. */
  submit(item: T, done?: CommitDone): void {
    if (this.#closed) {
      done?.(new Error('ingest: group commit is closed'));
      return;
    }
    this.#items.push(item);
    this.#waiters.push(done);
    if (done !== undefined) this.#durable = true;
    if (this.#items.length >= this.#options.maxBatch) {
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

  /** Commits what is queued now. */
  flush(): void {
    this.#clearTimer();
    if (this.#items.length === 0) return;
    const items = this.#items;
    const waiters = this.#waiters;
    const durable = this.#durable;
    this.#items = [];
    this.#waiters = [];
    this.#durable = false;
    const err = this.#tryCommit(items, durable);
    if (err === undefined) {
      for (const done of waiters) done?.(null);
      return;
    }
    this.#options.onFailure?.(err, items.length);
    if (items.length === 1 || STORE_WIDE.test(errorCode(err))) {
      for (const done of waiters) done?.(err);
      return;
    }
    items.forEach((item, i) => {
      const single = this.#tryCommit([item], waiters[i] !== undefined);
      if (single !== undefined) this.#options.onFailure?.(single, 1);
      waiters[i]?.(single ?? null);
    });
  }

  /** Commits what is queued and refuses further items. */
  close(): void {
    this.flush();
    this.#closed = true;
  }

  #tryCommit(items: readonly T[], durable: boolean): Error | undefined {
    try {
      this.#options.commit(items, durable);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    if (this.#timer.kind === 'timeout') clearTimeout(this.#timer.handle);
    else clearImmediate(this.#timer.handle);
    this.#timer = undefined;
  }
}

function errorCode(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}

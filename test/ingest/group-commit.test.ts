import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/ingest/group-commit.js';

function collect<T>(options: { windowMs: number; maxBatch: number; fail?: (items: readonly T[]) => Error | undefined }) {
  const batches: T[][] = [];
  const failures: number[] = [];
  const writer = new GroupCommit<T>({
    windowMs: options.windowMs,
    maxBatch: options.maxBatch,
    commit: (items) => {
      const err = options.fail?.(items);
      if (err) throw err;
      batches.push([...items]);
    },
    onFailure: (_err, n) => failures.push(n),
  });
  return { writer, batches, failures };
}

describe('GroupCommit', () => {
  it('commits everything submitted within the window in one batch, then calls every waiter', async () => {
    const { writer, batches } = collect<number>({ windowMs: 10, maxBatch: 100 });
    const done: Array<Error | null> = [];
    for (let i = 0; i < 5; i += 1) writer.submit(i, (err) => done.push(err));
    expect(batches).toEqual([]);
    await new Promise((r) => setTimeout(r, 30));
    expect(batches).toEqual([[0, 1, 2, 3, 4]]);
    expect(done).toEqual([null, null, null, null, null]);
  });

  it('commits at once when the batch is full', () => {
    const { writer, batches } = collect<number>({ windowMs: 1000, maxBatch: 3 });
    for (let i = 0; i < 7; i += 1) writer.submit(i);
    expect(batches).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    writer.close();
    expect(batches.at(-1)).toEqual([6]);
  });

  it('isolates a poison item so the rest of its batch still commits', () => {
    const { writer, batches, failures } = collect<string>({
      windowMs: 1000,
      maxBatch: 3,
      fail: (items) => (items.includes('poison') ? new Error('CHECK constraint failed') : undefined),
    });
    const done = new Map<string, Error | null>();
    for (const item of ['a', 'poison', 'b']) writer.submit(item, (err) => done.set(item, err));
    expect(batches).toEqual([['a'], ['b']]);
    expect(done.get('a')).toBeNull();
    expect(done.get('b')).toBeNull();
    expect(done.get('poison')?.message).toBe('CHECK constraint failed');
    expect(failures).toEqual([3, 1]);
  });

  it('fails the whole batch without retries when the store itself fails, and recovers on the next batch', () => {
    let diskFull = true;
    const { writer, batches } = collect<string>({
      windowMs: 1000,
      maxBatch: 2,
      fail: () => (diskFull ? Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }) : undefined),
    });
    const done: Array<Error | null> = [];
    writer.submit('a', (err) => done.push(err));
    writer.submit('b', (err) => done.push(err));
    expect(done.map((e) => e?.message)).toEqual(['database or disk is full', 'database or disk is full']);
    diskFull = false;
    writer.submit('a', (err) => done.push(err));
    writer.submit('b', (err) => done.push(err));
    expect(batches).toEqual([['a', 'b']]);
    expect(done.slice(2)).toEqual([null, null]);
  });

  it('validates its options with what was expected', () => {
    expect(() => new GroupCommit({ windowMs: -1, maxBatch: 1, commit: () => undefined })).toThrow(/windowMs must be within 0..1000, given -1/);
    expect(() => new GroupCommit({ windowMs: 1, maxBatch: 0, commit: () => undefined })).toThrow(/maxBatch must be an integer >= 1, given 0/);
  });
});

describe('GroupCommit: commits that answer per item, two in flight', () => {
  it('keeps a second batch in flight while the first commits, and gives each waiter its own answer', async () => {
    const started: number[][] = [];
    const finishes: Array<() => void> = [];
    const writer = new GroupCommit<number>({
      windowMs: 0,
      maxBatch: 2,
      maxInflight: 2,
      commit: (items) => {
        started.push([...items]);
        return new Promise((resolve) => finishes.push(() => resolve(items.map((i) => (i === 3 ? new Error('poison') : null)))));
      },
    });
    const done = new Map<number, string | null>();
    for (let i = 0; i < 6; i += 1) writer.submit(i, (err) => done.set(i, err?.message ?? null));
    expect(started).toEqual([[0, 1], [2, 3]]); // two in flight, the third batch waits
    finishes.shift()?.();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([[0, 1], [2, 3], [4, 5]]);
    for (const finish of finishes.splice(0)) finish();
    await writer.drain();
    for (const finish of finishes.splice(0)) finish();
    await writer.drain();
    expect([...done.entries()].sort((a, b) => a[0] - b[0])).toEqual([[0, null], [1, null], [2, null], [3, 'poison'], [4, null], [5, null]]);
  });
});

describe('GroupCommit: QoS 0 batches (relaxedWindowMs)', () => {
  function relaxed() {
    const batches: Array<{ items: number[]; durable: boolean }> = [];
    const writer = new GroupCommit<number>({
      windowMs: 5,
      relaxedWindowMs: 200,
      maxBatch: 100,
      commit: (items, durable) => {
        batches.push({ items: [...items], durable });
      },
    });
    return { writer, batches };
  }
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it('lets waiter-less items wait the relaxed window and commits them without durability', async () => {
    const { writer, batches } = relaxed();
    writer.submit(1);
    writer.submit(2);
    await sleep(40);
    expect(batches).toEqual([]);
    await sleep(250);
    expect(batches).toEqual([{ items: [1, 2], durable: false }]);
  });

  it('a waiter shortens the wait, keeps arrival order and makes the batch durable', async () => {
    const { writer, batches } = relaxed();
    writer.submit(1);
    await sleep(20);
    writer.submit(2, () => undefined);
    await sleep(40);
    expect(batches).toEqual([{ items: [1, 2], durable: true }]);
  });

  it('refuses a relaxed window shorter than the window', () => {
    expect(() => new GroupCommit<number>({ windowMs: 10, relaxedWindowMs: 5, maxBatch: 1, commit: () => undefined })).toThrow(/relaxedWindowMs/);
  });
});

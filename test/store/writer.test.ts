/**
 * The store's one write path on its own thread (src/store/worker-writer.ts, writer-thread.ts): programs run in
 * submission order with the same outcome as on the calling thread, a failing or unknown program is refused without
 * stopping the writer, close() drains what was queued, and a TypeScript source maps to its compiled file only when
 * that file is not older than the source.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { APPLY_LOCAL_UPDATES, APPLY_MESSAGES } from '../../src/ingest/local-writes.js';
import { silentLogger } from '../../src/log.js';
import { defineWriteProgram, openStore, openStoreReader, type GatewayStore } from '../../src/store/index.js';
import { SET_STATE } from '../../src/store/programs.js';
import { runnableModule } from '../../src/store/worker-writer.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function open(writer: 'worker' | 'inline'): GatewayStore {
  const dir = mkdtempSync(join(tmpdir(), `ib-writer-${writer}-`));
  const store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger(), writer });
  cleanups.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

const update = (i: number) => ({ kind: 'state' as const, deviceId: `d-${i % 7}`, attributes: { n: i } });

describe('store writer', () => {
  it('runs programs in submission order with the same outcomes on its own thread as inline', async () => {
    const outcomes: Record<string, unknown[]> = {};
    for (const writer of ['worker', 'inline'] as const) {
      const store = open(writer);
      expect(store.stats().writer).toBe(writer);
      // fired without waiting: each write must see the one before it (merge, duplicates, monotonic stamps)
      const writes = Array.from({ length: 60 }, (_, i) =>
        store.durable(APPLY_LOCAL_UPDATES, { updates: [update(i), update(i)], nowMicros: 1_000_000, nowMs: 5 }),
      );
      outcomes[writer] = await Promise.all(writes);
      expect(store.entities.get('entity_state', 'd-3')?.data).toEqual({ device_id: 'd-3', state: { n: 59 } });
      expect(store.entities.get('entity_state', 'd-3')?.updatedAt).toBe(1_000_000 + 8); // 9 versions of d-3, +1 µs each
    }
    expect(outcomes.worker).toEqual(outcomes.inline);
  });

  it('refuses an unknown or failing program with its reason and keeps writing', async () => {
    const store = open('worker');
    const ghost = defineWriteProgram(SET_STATE.module, 'store.noSuchProgram', () => undefined);
    await expect(store.durable(ghost, undefined)).rejects.toThrow(/exports no write program "store.noSuchProgram"/);
    // a program that throws: entries that are not iterable
    await expect(store.relaxed(SET_STATE, 42 as unknown as [])).rejects.toThrow(/store.setState: .*not iterable/);
    await store.syncState.set('mode', 'online');
    await store.settled();
    const reader = openStoreReader(store.path);
    cleanups.push(() => reader.close());
    expect(reader.syncState.get('mode')).toBe('online');
    expect(store.writeHealth().failing).toBeNull(); // the last write succeeded
  });

  it('a poison message is refused alone, in its batch\'s transaction, and the others commit in order', async () => {
    const store = open('worker');
    const poison = { kind: 'state' as const, deviceId: 'bad', attributes: { n: 10n } }; // JSON cannot hold a BigInt
    const outcome = await store.durable(APPLY_MESSAGES, {
      messages: [[update(1)], [poison], [{ kind: 'state', deviceId: 'd-1', attributes: { n: 2 } }]],
      nowMicros: 5,
      nowMs: 5,
    });
    expect(outcome.failed.map((f) => f.index)).toEqual([1]);
    expect(outcome.failed[0]?.message).toMatch(/BigInt/);
    expect(outcome.counts.written).toBe(2); // d-1 twice, in order: the later state wins
    expect(store.entities.get('entity_state', 'd-1')?.data).toEqual({ device_id: 'd-1', state: { n: 2 } });
    expect(store.entities.get('entity_state', 'bad')).toBeUndefined();
  });

  it('close() commits every write queued before it, then releases the file', async () => {
    const store = open('worker');
    const queued = Array.from({ length: 50 }, (_, i) => store.relaxed(APPLY_LOCAL_UPDATES, { updates: [{ kind: 'state', deviceId: `q-${i}`, attributes: { i } }], nowMicros: 1, nowMs: 1 }));
    const path = store.path;
    await store.close();
    expect((await Promise.all(queued)).every((c) => c.written === 1)).toBe(true);
    const reader = openStoreReader(path);
    expect(reader.entities.all()).toHaveLength(50);
    reader.close();
    await expect(store.relaxed(SET_STATE, [])).rejects.toThrow(/closed/);
  });

  it('maps a TypeScript source to its compiled file, refusing a missing or stale one', () => {
    const root = mkdtempSync(join(tmpdir(), 'ib-runnable-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, 'src/store'), { recursive: true });
    mkdirSync(join(root, 'dist/store'), { recursive: true });
    const source = join(root, 'src/store/x.ts');
    writeFileSync(source, 'export {};');
    expect(() => runnableModule(pathToFileURL(source).href)).toThrow(/missing: run `npm run build`/);
    writeFileSync(join(root, 'dist/store/x.js'), 'export {};');
    utimesSync(source, new Date(), new Date(Date.now() + 60_000));
    expect(() => runnableModule(pathToFileURL(source).href)).toThrow(/older than .*: run `npm run build`/);
    utimesSync(source, new Date(), new Date(Date.now() - 60_000));
    expect(runnableModule(pathToFileURL(source).href)).toBe(pathToFileURL(join(root, 'dist/store/x.js')).href);
    expect(runnableModule('file:///opt/app/dist/store/x.js')).toBe('file:///opt/app/dist/store/x.js');
  });
});

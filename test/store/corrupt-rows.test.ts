/**
 * Rows the store cannot read back (a hand-edited file, a disk error): logged and counted, never repaired silently —
 * not by a read (entities, outbox, sync state), not by a write program.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { APPLY_LOCAL_UPDATES } from '../../src/ingest/local-writes.js';
import { createLogger } from '../../src/log.js';
import { openStore, openStoreReader, type GatewayStore } from '../../src/store/index.js';
import { openStoreFile, type RawDb } from '../helpers/store-file.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(): { store: GatewayStore; db: RawDb; lines: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ib-corrupt-'));
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, done) => done(void lines.push(c.toString())) }) });
  const store = openStore({ path: join(dir, 'gateway.db'), logger, logIntervalMs: 0 });
  const db = openStoreFile(store.path, { writable: true });
  cleanups.push(async () => {
    db.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, db, lines };
}

describe('unreadable rows', () => {
  it('an entity whose data is not a JSON object is skipped by reads, logged and counted, and left as it is', () => {
    const { store, db, lines } = setup();
    db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at) VALUES ('entity_state', 'good', '{"device_id":"good","state":{}}', 1)`).run();
    db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at) VALUES ('entity_state', 'bad', '{not json', 1)`).run();
    db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at) VALUES ('gizmo', 'odd', '{}', 1)`).run();
    expect(store.entities.all().map((e) => e.entityId)).toEqual(['good']);
    expect(store.stats().corruptRows).toEqual({ entities: 2 });
    expect(lines.some((l) => l.includes('unreadable row') && l.includes('entity_state/bad'))).toBe(true);
    expect(db.prepare("SELECT data FROM entities WHERE entity_id = 'bad'").pluck().get()).toBe('{not json'); // untouched
  });

  it('an outbox row with an unknown operation is not pushed, not deleted, and counted', () => {
    const { store, db } = setup();
    db.prepare(
      `INSERT INTO outbox (entity_type, entity_id, client_sync_id, operation, data, updated_at, priority, critical, first_queued_at)
       VALUES ('entity_state', 'x', '0000000000000a-000000000000', 'explode', '{}', 1, 0, 0, 1)`,
    ).run();
    expect(store.outbox.take(10)).toEqual([]);
    expect(store.outbox.count()).toBe(1);
    expect(store.stats().corruptRows).toEqual({ outbox: 1 });
  });

  it('a sync_state value that fails its schema reads as absent, counted, in the daemon and in the CLI reader', async () => {
    const { store, db } = setup();
    db.prepare(`INSERT INTO sync_state (key, value) VALUES ('last_sync', '42'), ('mode', '"sideways"')`).run();
    const reopened = openStore({ path: store.path, logger: createLogger({ level: 'silent' }) });
    cleanups.push(() => reopened.close());
    expect(reopened.syncState.get('last_sync')).toBeUndefined();
    expect(reopened.stats().corruptRows).toEqual({ sync_state: 2 });
    const reader = openStoreReader(store.path);
    cleanups.push(() => reader.close());
    expect(reader.status().mode).toBeNull();
    expect(reader.stats().corruptRows).toEqual({ sync_state: 2 }); // status() read both keys
  });

  it('a local write on an entity with unreadable data reports it (counted), then writes the new state', async () => {
    const { store, db } = setup();
    db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at) VALUES ('entity_state', 'lamp', '[1,2]', 1)`).run();
    const counts = await store.durable(APPLY_LOCAL_UPDATES, { updates: [{ kind: 'state', deviceId: 'lamp', attributes: { on: true } }], nowMicros: 10, nowMs: 1 });
    expect(counts.written).toBe(1);
    expect(store.stats().corruptRows).toEqual({ entities: 1 });
    expect(store.entities.get('entity_state', 'lamp')?.data).toEqual({ device_id: 'lamp', state: { on: true } });
  });
});

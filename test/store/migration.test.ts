/**
 * A store written by the previous schema (version 1: a separate outbox table) opens with every pending change kept:
 * the pending change moves into its entity's row (one page written per state), and `outbox` remains readable and
 * writable as a view.
 */
import Database from 'better-sqlite3';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { openStore } from '../../src/store/index.js';

const V1 = `
  CREATE TABLE entities (entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, data TEXT NOT NULL, updated_at INTEGER NOT NULL,
    sync_id TEXT, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (entity_type, entity_id)) WITHOUT ROWID;
  CREATE TABLE outbox (entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, client_sync_id TEXT NOT NULL, operation TEXT NOT NULL,
    data TEXT NOT NULL, updated_at INTEGER NOT NULL, priority INTEGER NOT NULL, critical INTEGER NOT NULL DEFAULT 0,
    first_queued_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (entity_type, entity_id)) WITHOUT ROWID;
  CREATE TABLE conflicts (id INTEGER PRIMARY KEY, recorded_at INTEGER NOT NULL, entity_type TEXT NOT NULL, entity_id TEXT NOT NULL,
    type TEXT NOT NULL, reason TEXT NOT NULL, resolution TEXT NOT NULL, server_version TEXT, client_version TEXT);
  CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  PRAGMA user_version = 1;
`;

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('schema migration 1 → 2', () => {
  it('keeps every pending change, in push order, with its attempts, critical flag and first_queued_at', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ib-migrate-'));
    dirs.push(dir);
    const path = join(dir, 'gateway.db');
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    old.exec(V1);
    old.prepare(`INSERT INTO entities VALUES ('entity_state', 'lamp', '{"device_id":"lamp","state":{"on":true}}', 100, NULL, 0)`).run();
    old.prepare(`INSERT INTO entities VALUES ('device', 'lamp', '{"name":"Lamp"}', 90, 'srv-1', 0)`).run();
    old.prepare(`INSERT INTO entities VALUES ('room', 'room-hall', '{"name":"Hall"}', 80, 'srv-2', 0)`).run();
    old.prepare(`INSERT INTO outbox VALUES ('entity_state', 'lamp', '0000000000000a-aaaaaaaaaaaa', 'create', '{"device_id":"lamp","state":{"on":true}}', 100, 0, 1, 5000, 2)`).run();
    old.prepare(`INSERT INTO outbox VALUES ('device', 'lamp', '0000000000000b-bbbbbbbbbbbb', 'update', '{"name":"Lamp"}', 90, 1, 0, 4000, 0)`).run();
    old.prepare(`INSERT INTO outbox VALUES ('entity_state', 'ghost', '0000000000000c-cccccccccccc', 'delete', '{}', 70, 0, 0, 6000, 0)`).run();
    old.close();
    chmodSync(path, 0o600); // a store made with a loose umask is refused at start (docs/security.md); an installed one is 0600

    const store = openStore({ path, logger: silentLogger() });
    try {
      expect(store.outbox.take(10).map((c) => [c.entityType, c.entityId, c.clientSyncId, c.operation, c.critical, c.firstQueuedAt, c.attempts])).toEqual([
        ['entity_state', 'lamp', '0000000000000a-aaaaaaaaaaaa', 'create', true, 5000, 2],
        ['entity_state', 'ghost', '0000000000000c-cccccccccccc', 'delete', false, 6000, 0],
        ['device', 'lamp', '0000000000000b-bbbbbbbbbbbb', 'update', false, 4000, 0],
      ]);
      expect(store.entities.get('entity_state', 'lamp')?.data).toEqual({ device_id: 'lamp', state: { on: true } });
      expect(store.entities.get('room', 'room-hall')?.syncId).toBe('srv-2'); // nothing pending: untouched
      expect(store.status(7000)).toMatchObject({ pending: 3, oldestPendingAgeMs: 3000 });
      const file = new Database(path, { readonly: true });
      expect(file.pragma('user_version', { simple: true })).toBe(2);
      expect(file.prepare('SELECT entity_id, operation, priority FROM outbox ORDER BY priority, first_queued_at').all()).toEqual([
        { entity_id: 'lamp', operation: 'create', priority: 0 },
        { entity_id: 'ghost', operation: 'delete', priority: 0 },
        { entity_id: 'lamp', operation: 'update', priority: 1 },
      ]);
      file.close();
    } finally {
      await store.close();
    }
  });
});

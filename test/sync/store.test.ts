/** The sync side of the store on a real SQLite file: outbox order, remote pages, results; rejection end to end. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/log.js';
import { formatTimestamp, SyncResultSchema, type WireChange } from '../../src/protocol/index.js';
import { ClientSyncIds, openStore, type GatewayStore } from '../../src/store/index.js';
import { APPLY_DELTA_PAGE } from '../../src/sync/delta-apply.js';
import { checkChanges } from '../../src/sync/pull.js';
import { APPLY_PUSH_RESULT } from '../../src/sync/push-apply.js';
import { decide } from '../../src/sync/push.js';
import { toWireChange } from '../../src/sync/index.js';
import { startTestServer } from '../helpers/server.js';
import { openStoreFile, type RawDb } from '../helpers/store-file.js';
import { makeGateway, serverState } from './fixtures.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A store, and the test's own connection to its file (rows set up by hand, reads). */
function store(): { store: GatewayStore; db: RawDb } {
  const dir = mkdtempSync(join(tmpdir(), 'ib-store-'));
  const opened = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
  const db = openStoreFile(opened.path, { writable: true });
  cleanups.push(async () => {
    db.close();
    await opened.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store: opened, db };
}

/** Applies one delta page as the pull phase does: checked, then the store's writer. */
function applyPage(s: GatewayStore, page: { changes: WireChange[]; serverTime: string; last: boolean }) {
  return s.relaxed(APPLY_DELTA_PAGE, { changes: checkChanges(page.changes, silentLogger(), undefined).changes, conflicts: [], serverTime: page.serverTime, last: page.last, nowMs: Date.now() });
}

const ids = new ClientSyncIds();

function queue(db: RawDb, type: string, id: string, priority: number, queuedAt: number, data: object = { name: id }): string {
  const csid = ids.next();
  db.prepare(
    `INSERT INTO outbox (entity_type, entity_id, client_sync_id, operation, data, updated_at, priority, critical, first_queued_at)
     VALUES (?, ?, ?, 'update', ?, ?, ?, 0, ?)`,
  ).run(type, id, csid, JSON.stringify(data), queuedAt * 1000, priority, queuedAt);
  return csid;
}

const change = (id: string, state: object, syncId: string): WireChange => ({
  entity_type: 'entity_state',
  entity_id: id,
  operation: 'update',
  data: { id, sync_id: syncId, device_id: id, state },
  updated_at: formatTimestamp(Date.now() * 1000),
  sync_id: syncId,
});

describe('sync store', () => {
  it('client sync ids are time-ordered, unique, and the format the brief fixes', () => {
    const generator = new ClientSyncIds();
    const ids = Array.from({ length: 1000 }, () => generator.next(1_700_000_000_000_000));
    expect(new Set(ids).size).toBe(1000);
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]).toMatch(/^[0-9a-f]{14}-[0-9a-f]{12}$/);
  });

  it('takePending orders by priority (states, devices, rooms) then age, writes nothing, and failed pushes count attempts', async () => {
    const { store: s, db } = store();
    queue(db, 'room', 'r1', 2, 1);
    queue(db, 'device', 'd1', 1, 2);
    queue(db, 'entity_state', 's2', 0, 5);
    queue(db, 'entity_state', 's1', 0, 3);
    const outbox = s.outbox;
    expect(outbox.take(3).map((c) => c.entityId)).toEqual(['s1', 's2', 'd1']);
    const first = outbox.take(3);
    // data_version changes when any other connection commits: taking pending changes commits nothing
    const changesBefore = db.prepare('PRAGMA data_version').pluck().get();
    const again = outbox.take(10);
    expect(db.prepare('PRAGMA data_version').pluck().get()).toBe(changesBefore);
    expect(again.map((c) => [c.entityId, c.attempts])).toEqual([['s1', 0], ['s2', 0], ['d1', 0], ['r1', 0]]);
    await outbox.recordFailedAttempt(first);
    await outbox.recordFailedAttempt(first.slice(0, 1));
    expect(outbox.take(10).map((c) => [c.entityId, c.attempts])).toEqual([['s1', 2], ['s2', 1], ['d1', 1], ['r1', 0]]);
    expect(s.status(11).pending).toBe(4);
    expect(s.status(11).oldestPendingAgeMs).toBe(10);
  });

  it('applies remote pages atomically: watermark with the last page only, pending local changes kept and recorded, no outbox writes', async () => {
    const { store: s, db } = store();
    db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id) VALUES ('entity_state', 'lamp', '{"device_id":"lamp","state":{"power":"on"}}', 1, 's-0')`).run();
    db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id) VALUES ('entity_state', 'fan', '{"device_id":"fan","state":{"speed":1}}', 1, 's-1')`).run();
    queue(db, 'entity_state', 'fan', 0, 1, { device_id: 'fan', state: { speed: 2 } });
    const state = s.syncState;
    const first = await applyPage(s, { changes: [change('lamp', { power: 'off' }, 's-2')], serverTime: 'T1', last: false });
    expect(first).toMatchObject({ applied: 1, commands: [{ deviceId: 'lamp', attributes: { power: 'off' } }] });
    expect(state.get('last_sync')).toBeUndefined();
    const second = await applyPage(s, {
      changes: [change('lamp', { power: 'off' }, 's-2'), change('fan', { speed: 3 }, 's-3')],
      serverTime: 'T2',
      last: true,
    });
    // The fan has a pending local change: the device hears of speed 3 only if the push result says it won
    // (docs/architecture.md §The life of a device state; test/sync/live-rules.test.ts).
    expect(second).toMatchObject({ applied: 0, echoes: 1, conflicts: 1, commands: [] });
    expect(state.get('last_sync')).toBe('T2');
    const fan = db.prepare<[], { data: string }>("SELECT data FROM entities WHERE entity_id = 'fan'").get();
    expect(JSON.parse(fan?.data ?? '{}')).toEqual({ device_id: 'fan', state: { speed: 1 } }); // local kept
    expect(db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM outbox').get()?.n).toBe(1);
    const conflict = db.prepare<[], { reason: string; resolution: string }>('SELECT reason, resolution FROM conflicts').get();
    expect(conflict).toEqual({ reason: 'pending_local_change', resolution: 'server_arbitrates_on_push' });
  });

  it('a change the server rejects is dropped from the outbox, recorded and logged; the rest of the batch applies', async () => {
    const srv = await startTestServer({ hmac: { required: true } });
    cleanups.push(() => srv.close());
    const lines: string[] = [];
    const gw = makeGateway({ url: srv.url, creds: await srv.addClient('home-1') });
    cleanups.push(() => gw.close());
    await gw.state('lamp', { power: 'on' });
    queue(gw.db, 'entity_state', 'broken', 0, Date.now(), { state: { x: 1 } }); // no device_id: INVALID_ENTITY
    const logger = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, done) => { lines.push(c.toString()); done(); } }) });
    const batch = gw.store.outbox.take(10); // what the cycle below pushes (read before it clears them)
    expect(batch.map((c) => toWireChange(c)).every((c) => c.data?.id === c.entity_id)).toBe(true);
    const report = await gw.client.runCycle();
    expect(report).toMatchObject({ pushed: 2, applied: 1, rejected: 1 });
    expect(gw.pending()).toEqual([]);
    expect(await serverState(srv.server, 'home-1', 'lamp')).toEqual({ power: 'on' });
    const recorded = gw.db.prepare<[], { type: string; reason: string }>('SELECT type, reason FROM conflicts').all();
    expect(recorded).toHaveLength(1);
    expect(recorded[0]?.type).toBe('REJECTED');
    expect(recorded[0]?.reason).toMatch(/^INVALID_ENTITY: /);
    expect(gw.store.status().conflicts).toBe(1);
    // a rejection is logged as a warning (never silent): the same result decided and applied with a logger that keeps lines
    const { decisions } = decide(
      SyncResultSchema.parse({
        type: 'sync_result',
        applied: batch.map((c) => ({ client_sync_id: c.clientSyncId, server_sync_id: null, status: 'rejected', entity_type: c.entityType, entity_id: c.entityId, error: { code: 'INVALID_ENTITY', message: 'bad' } })),
        conflicts: [],
      }),
      batch,
      logger,
    );
    await gw.store.relaxed(APPLY_PUSH_RESULT, { decisions, serverConflicts: [], nowMs: Date.now() });
    expect(lines.some((l) => l.includes('server rejected a pushed change'))).toBe(true);
  });
});

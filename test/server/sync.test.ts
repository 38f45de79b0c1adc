import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, stateChange } from './client.js';

async function loggedIn(ts: TestServer, home: string): Promise<TestClient> {
  const c = new TestClient(ts.url, await ts.addClient(home));
  await c.login();
  return c;
}

forEachBackend((backend) => {
  describe(`delta, watermark and pagination [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({}, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('pages a 5,000-change changeset, states before devices before rooms, each change once', async () => {
      const a = await loggedIn(ts, 'home-big');
      const b = await loggedIn(ts, 'home-big');
      const t = Date.now();
      const all: Record<string, unknown>[] = [];
      for (let i = 0; i < 1000; i++) all.push({ ...deviceChange(`room-${i}`, `Room ${i}`, isoAt(t)), entity_type: 'room' });
      for (let i = 0; i < 2000; i++) all.push(deviceChange(`dev-${i}`, `Device ${i}`, isoAt(t)));
      for (let i = 0; i < 2000; i++) all.push(stateChange(`state-${i}`, { on: i % 2 === 0 }, isoAt(t)));
      for (let i = 0; i < all.length; i += 1000) {
        const result = await a.pushOk(all.slice(i, i + 1000));
        expect(result.applied.every((r) => r.status === 'applied')).toBe(true);
      }
      const pulled = await b.pullAll(null);
      expect(pulled.pages).toBe(5);
      expect(pulled.changes).toHaveLength(5000);
      const keys = pulled.changes.map((ch) => `${ch.entity_type}/${ch.entity_id}`);
      expect(new Set(keys).size).toBe(5000);
      const order = pulled.changes.map((ch) => ch.entity_type);
      expect(order.lastIndexOf('entity_state')).toBeLessThan(order.indexOf('device'));
      expect(order.lastIndexOf('device')).toBeLessThan(order.indexOf('room'));
      expect(pulled.changes.every((ch) => ch.operation === 'create')).toBe(true);
      const small = await b.pullAll(null, { limit: 700, entity_types: ['rooms'] });
      expect(small.pages).toBe(2);
      expect(small.changes).toHaveLength(1000);
    });

    it('picks up, on the next sync, a write committed while a paged sync runs', async () => {
      const a = await loggedIn(ts, 'home-during');
      const b = await loggedIn(ts, 'home-during');
      const t = Date.now();
      await a.pushOk(Array.from({ length: 30 }, (_, i) => deviceChange(`dev-${i}`, `Device ${i}`, isoAt(t))));
      const first = await b.syncRequest({ last_sync: null, limit: 10 });
      expect(first.json.more).toBe(true);
      const sentFirst = first.json.changes.map((ch: { entity_id: string }) => ch.entity_id);
      // During the paged sync: an entity already sent is updated, one not yet sent is updated, a new one is created.
      const notYetSent = 'dev-25';
      expect(sentFirst).not.toContain(notYetSent);
      await a.pushOk([
        deviceChange(sentFirst[0], 'Renamed early', isoAt(t + 5000)),
        deviceChange(notYetSent, 'Renamed late', isoAt(t + 5000)),
        deviceChange('dev-new', 'Brand new', isoAt(t + 5000)),
      ]);
      const seen = new Map<string, string>();
      for (const ch of first.json.changes) seen.set(ch.entity_id, ch.data.name);
      let cursor = first.json.cursor;
      while (cursor) {
        const page = await b.syncRequest({ last_sync: null, limit: 10, cursor });
        expect(page.json.server_time).toBe(first.json.server_time);
        for (const ch of page.json.changes) seen.set(ch.entity_id, ch.data.name);
        cursor = page.json.more ? page.json.cursor : null;
      }
      const next = await b.pullAll(first.json.server_time);
      for (const ch of next.changes) seen.set(ch.entity_id, ch.data.name as string);
      expect(seen.get(sentFirst[0])).toBe('Renamed early');
      expect(seen.get(notYetSent)).toBe('Renamed late');
      expect(seen.get('dev-new')).toBe('Brand new');
      expect(seen.size).toBe(31);
      expect(next.changes.find((ch) => ch.entity_id === 'dev-new')?.operation).toBe('create');
      expect(next.changes.find((ch) => ch.entity_id === notYetSent)?.operation).toBe('update');
    });

    it('excludes the client own writes from its incremental delta, includes them in a full sync', async () => {
      const a = await loggedIn(ts, 'home-own');
      const start = await a.pullAll(null);
      await a.pushOk([deviceChange('dev-own', 'Mine', isoAt(Date.now()))]);
      expect((await a.pullAll(start.serverTime)).changes).toEqual([]);
      expect((await a.pullAll(null)).changes.map((ch) => ch.entity_id)).toEqual(['dev-own']);
    });

    it('honours include_deleted literally and entity_types in both spellings', async () => {
      const a = await loggedIn(ts, 'home-del');
      const b = await loggedIn(ts, 'home-del');
      const t = Date.now();
      await a.pushOk([deviceChange('dev-1', 'One', isoAt(t)), deviceChange('dev-2', 'Two', isoAt(t)), { ...deviceChange('room-1', 'Hall', isoAt(t)), entity_type: 'rooms' }]);
      const base = await b.pullAll(null);
      expect(base.changes).toHaveLength(3);
      await a.pushOk([{ entity_type: 'device', entity_id: 'dev-1', operation: 'delete', updated_at: isoAt(t + 2000), client_sync_id: `del-${t}` }]);
      expect((await b.pullAll(base.serverTime)).changes).toEqual([]);
      const withDeleted = await b.pullAll(base.serverTime, { include_deleted: true });
      expect(withDeleted.changes.map((ch) => [ch.entity_id, ch.operation])).toEqual([['dev-1', 'delete']]);
      expect((await b.pullAll(null)).changes.map((ch) => ch.entity_id).sort()).toEqual(['dev-2', 'room-1']);
      const full = await b.pullAll(null, { include_deleted: true, entity_types: ['device'] });
      expect(full.changes.map((ch) => ch.entity_id).sort()).toEqual(['dev-1', 'dev-2']);
      const plural = await b.pullAll(null, { entity_types: ['rooms'] });
      expect(plural.changes.map((ch) => ch.entity_type)).toEqual(['room']);
    });

    it('emits Python-compatible changes: id, sync_id and updated_at inside data, µs UTC timestamps', async () => {
      const a = await loggedIn(ts, 'home-py');
      const b = await loggedIn(ts, 'home-py');
      const naive = '2024-01-15T10:33:00.123456';
      const result = await a.pushOk([
        {
          entity_type: 'devices',
          entity_id: 'device-123',
          operation: 'create',
          data: { id: 'device-123', sync_id: 'py-sync-1', updated_at: naive, name: 'Kettle', room_id: null },
          client_sync_id: 'client-xyz-py',
        },
      ]);
      expect(result.applied[0]).toMatchObject({ status: 'applied', server_sync_id: 'py-sync-1', entity_type: 'device' });
      const { changes } = await b.pullAll(null);
      expect(changes[0]).toEqual({
        entity_type: 'device',
        entity_id: 'device-123',
        operation: 'create',
        data: { id: 'device-123', sync_id: 'py-sync-1', updated_at: '2024-01-15T10:33:00.123456Z', name: 'Kettle', room_id: null },
        updated_at: '2024-01-15T10:33:00.123456Z',
        sync_id: 'py-sync-1',
      });
    });

    it('refuses a malformed cursor and another client cursor with 400', async () => {
      const a = await loggedIn(ts, 'home-big');
      const b = await loggedIn(ts, 'home-big');
      const page = await a.syncRequest({ last_sync: null, limit: 5 });
      expect(page.json.more).toBe(true);
      const stolen = await b.syncRequest({ last_sync: null, cursor: page.json.cursor });
      expect(stolen.status).toBe(400);
      for (const bad of ['!!!', Buffer.from('{"v":1}').toString('base64url'), 'eyJ2IjoxfQ']) {
        const res = await a.syncRequest({ cursor: bad });
        expect(res.status, bad).toBe(400);
        expect(res.json.code).toBe('BAD_REQUEST');
      }
      const forged = JSON.parse(Buffer.from(page.json.cursor, 'base64url').toString());
      forged.s = 0;
      const res = await a.syncRequest({ cursor: Buffer.from(JSON.stringify(forged)).toString('base64url') });
      expect(res.status).toBe(400);
    });

    it('records the ack and refuses one from the future with 400', async () => {
      const a = await loggedIn(ts, 'home-ack');
      const { serverTime } = await a.pullAll(null);
      const ok = await a.ack(serverTime);
      expect(ok.status).toBe(200);
      expect((await ts.server.store.getClient(a.creds.client_id))?.lastAckWatermark).toBe(parseTimestamp(serverTime));
      const future = await a.ack(isoAt(Date.now() + 3_600_000));
      expect(future.status).toBe(400);
      expect(future.json.code).toBe('BAD_REQUEST');
    });
  });

  describe(`push: per-change rejection, idempotency, limits [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({ maxPushChanges: 50 }, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('rejects bad changes one by one and applies the rest', async () => {
      const a = await loggedIn(ts, 'home-rej');
      const t = isoAt(Date.now());
      const good1 = deviceChange('dev-ok-1', 'Fine', t);
      const good2 = stateChange('state-ok', { power: 'on' }, t);
      const result = await a.pushOk([
        { ...deviceChange('x-1', 'Toaster', t), entity_type: 'toaster' },
        good1,
        { ...deviceChange('dev-bad', 'x', t), data: { room_id: 'r' } }, // no name
        { ...deviceChange('dev-nots', 'No time', t), updated_at: undefined },
        { ...deviceChange('dev-id', 'Id', t), data: { id: 'other', name: 'Id' } },
        { ...deviceChange('dev-ts', 'Ts', t), updated_at: undefined, data: { name: 'Ts', updated_at: 42 } },
        good2,
      ]);
      expect(result.applied.map((r) => [r.entity_id, r.status, r.error?.code])).toEqual([
        ['x-1', 'rejected', 'UNKNOWN_ENTITY_TYPE'],
        ['dev-ok-1', 'applied', undefined],
        ['dev-bad', 'rejected', 'INVALID_ENTITY'],
        ['dev-nots', 'rejected', 'INVALID_ENTITY'],
        ['dev-id', 'rejected', 'INVALID_ENTITY'],
        ['dev-ts', 'rejected', 'INVALID_ENTITY'],
        ['state-ok', 'applied', undefined],
      ]);
      expect(result.applied[2]?.error?.message).toContain('data.name');
      expect((await ts.server.entities('home-rej')).map((e) => e.entity_id).sort()).toEqual(['dev-ok-1', 'state-ok']);
    });

    it('refuses the whole push when a change is unaddressable (no client_sync_id) with 400', async () => {
      const a = await loggedIn(ts, 'home-rej');
      const res = await a.push([{ entity_type: 'device', entity_id: 'd', operation: 'update', data: { name: 'x' } }]);
      expect(res.status).toBe(400);
    });

    it('answers more than maxPushChanges with 413', async () => {
      const a = await loggedIn(ts, 'home-rej');
      const t = isoAt(Date.now());
      const res = await a.push(Array.from({ length: 51 }, (_, i) => deviceChange(`dev-${i}`, 'n', t)));
      expect(res.status).toBe(413);
      expect(res.json.code).toBe('PAYLOAD_TOO_LARGE');
    });

    it('returns the stored result for a resent client_sync_id and applies it once', async () => {
      const a = await loggedIn(ts, 'home-idem');
      const t = Date.now();
      const change = deviceChange('dev-i', 'Once', isoAt(t));
      const first = await a.pushOk([change]);
      const seqBefore = (await ts.server.entities('home-idem'))[0]?.seq;
      const again = await a.pushOk([change, change]);
      expect(again.applied).toEqual([first.applied[0], first.applied[0]]);
      expect(await ts.server.applicationCount(a.creds.client_id, change.client_sync_id as string)).toBe(1);
      expect((await ts.server.entities('home-idem'))[0]?.seq).toBe(seqBefore);
      // A later edit under a new id still applies; replaying the old id does not undo it.
      await a.pushOk([deviceChange('dev-i', 'Twice', isoAt(t + 5000))]);
      const replay = await a.pushOk([change]);
      expect(replay.applied[0]).toEqual(first.applied[0]);
      expect((await ts.server.entities('home-idem'))[0]?.data.name).toBe('Twice');
    });

    it('applies a push whose response was lost exactly once when the client retries', async () => {
      const a = await loggedIn(ts, 'home-lost');
      const change = deviceChange('dev-lost', 'Lost reply', isoAt(Date.now()));
      const csid = change.client_sync_id as string;
      const body = JSON.stringify({ type: 'sync_push', client_id: a.creds.client_id, changes: [change] });
      const { port } = new URL(ts.url);
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write(
            `POST /api/v1/sync/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
              `Authorization: Bearer ${a.token}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
            () => {
              // the push is applied, then the connection dies before its response is read
              void (async () => {
                for (let i = 0; i < 500 && (await ts.server.applicationCount(a.creds.client_id, csid)) === 0; i++) {
                  await new Promise((r) => setTimeout(r, 10));
                }
                socket.destroy();
                resolve();
              })().catch(reject);
            },
          );
        });
        socket.on('error', reject);
      });
      expect(await ts.server.applicationCount(a.creds.client_id, csid)).toBe(1);
      const retry = await a.pushOk([change]);
      expect(retry.applied[0]).toMatchObject({ status: 'applied', client_sync_id: csid });
      expect(await ts.server.applicationCount(a.creds.client_id, csid)).toBe(1);
    });

    it('treats an identical resubmission under a new id as applied without a new seq; deleting the unknown stores a tombstone', async () => {
      const a = await loggedIn(ts, 'home-same');
      const t = isoAt(Date.now());
      const change = { ...deviceChange('dev-s', 'Same', t), sync_id: 'v-1' };
      await a.pushOk([change]);
      const seq = (await ts.server.entities('home-same'))[0]?.seq;
      const again = await a.pushOk([{ ...change, client_sync_id: 'another-id' }]);
      expect(again.applied[0]).toMatchObject({ status: 'applied', server_sync_id: 'v-1' });
      expect(again.conflicts).toEqual([]);
      expect((await ts.server.entities('home-same'))[0]?.seq).toBe(seq);
      const del = await a.pushOk([{ entity_type: 'room', entity_id: 'never-was', operation: 'delete', updated_at: t, client_sync_id: 'del-nw' }]);
      expect(del.applied[0]?.status).toBe('applied');
      expect((await ts.server.entities('home-same')).find((e) => e.entity_id === 'never-was')?.deleted).toBe(true);
    });
  });
});

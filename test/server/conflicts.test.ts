import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt } from './client.js';

/** seed §Conflict Resolution, as applied by the server on push. */
forEachBackend((backend) => {
  describe(`last-write-wins on push [${backend.name}]`, () => {
    let ts: TestServer;
    let a: TestClient;
    let b: TestClient;
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    let n = 0;
    beforeAll(async () => {
      ts = await startTestServer({}, { backend });
      a = new TestClient(ts.url, await ts.addClient('home-lww'));
      b = new TestClient(ts.url, await ts.addClient('home-lww'));
      await a.login();
      await b.login();
    });
    afterAll(async () => {
      await ts.close();
    });

    function id(): string {
      n++;
      return `dev-${n}`;
    }

    it('a newer client version wins; an older one loses with a server_wins conflict carrying both versions', async () => {
      const e = id();
      await a.pushOk([{ ...deviceChange(e, 'A', isoAt(t0 + 10_000)), sync_id: 'sa' }]);
      const older = await b.pushOk([{ ...deviceChange(e, 'B-old', isoAt(t0)), sync_id: 'sb' }]);
      expect(older.applied[0]).toMatchObject({ status: 'conflict', server_sync_id: 'sa' });
      expect(older.conflicts).toHaveLength(1);
      const conflict = older.conflicts[0]!;
      expect(conflict).toMatchObject({
        entity_type: 'device',
        entity_id: e,
        type: 'UPDATE_UPDATE',
        reason: 'newer_on_server',
        resolution: 'server_wins',
        server_version: { operation: 'update', sync_id: 'sa', deleted: false, updated_at: '2026-01-01T00:00:10.000000Z' },
        client_version: { operation: 'update', sync_id: 'sb', deleted: false, updated_at: '2026-01-01T00:00:00.000000Z' },
      });
      expect(conflict.server_version?.data).toMatchObject({ id: e, name: 'A' });
      expect(conflict.client_version.data).toMatchObject({ id: e, name: 'B-old' });
      const newer = await b.pushOk([{ ...deviceChange(e, 'B-new', isoAt(t0 + 20_000)), sync_id: 'sb2' }]);
      expect(newer.applied[0]).toMatchObject({ status: 'applied', server_sync_id: 'sb2' });
      // the client won over another client's version: reported as a client_wins conflict
      expect(newer.conflicts[0]).toMatchObject({ resolution: 'client_wins', reason: 'newer_on_client', type: 'UPDATE_UPDATE' });
      expect((await ts.server.entities('home-lww')).find((x) => x.entity_id === e)?.data.name).toBe('B-new');
    });

    it('no conflict is reported when a client overwrites its own version', async () => {
      const e = id();
      await a.pushOk([deviceChange(e, 'v1', isoAt(t0))]);
      const again = await a.pushOk([deviceChange(e, 'v2', isoAt(t0 + 5000))]);
      expect(again.applied[0]?.status).toBe('applied');
      expect(again.conflicts).toEqual([]);
    });

    it('within 1 s the higher sync_id wins, either way', async () => {
      const e = id();
      await a.pushOk([{ ...deviceChange(e, 'A', isoAt(t0)), sync_id: 'm' }]);
      const lower = await b.pushOk([{ ...deviceChange(e, 'B', isoAt(t0 + 900)), sync_id: 'a' }]);
      expect(lower.applied[0]?.status).toBe('conflict');
      expect(lower.conflicts[0]).toMatchObject({ reason: 'higher_sync_id_on_server', resolution: 'server_wins' });
      const higher = await b.pushOk([{ ...deviceChange(e, 'B2', isoAt(t0 - 900)), sync_id: 'z' }]);
      expect(higher.applied[0]?.status).toBe('applied');
      expect(higher.conflicts[0]).toMatchObject({ reason: 'higher_sync_id_on_client', resolution: 'client_wins' });
    });

    it('a timestamp exactly 1 s apart is decided by timestamp, not sync_id', async () => {
      const e = id();
      await a.pushOk([{ ...deviceChange(e, 'A', isoAt(t0)), sync_id: 'z' }]);
      const res = await b.pushOk([{ ...deviceChange(e, 'B', isoAt(t0 + 1000)), sync_id: 'a' }]);
      expect(res.applied[0]?.status).toBe('applied');
      expect(res.conflicts[0]?.reason).toBe('newer_on_client');
    });

    it('within the window a delete beats an update (UPDATE_DELETE), both ways', async () => {
      const e = id();
      await a.pushOk([{ ...deviceChange(e, 'A', isoAt(t0 + 500)), sync_id: 'z' }]);
      const del = await b.pushOk([
        { entity_type: 'device', entity_id: e, operation: 'delete', updated_at: isoAt(t0), sync_id: 'a', client_sync_id: `${e}-del` },
      ]);
      expect(del.applied[0]?.status).toBe('applied');
      expect(del.conflicts[0]).toMatchObject({ type: 'UPDATE_DELETE', reason: 'delete_wins', resolution: 'client_wins' });
      const upd = await a.pushOk([{ ...deviceChange(e, 'A2', isoAt(t0 + 900)), sync_id: 'zz' }]);
      expect(upd.applied[0]?.status).toBe('conflict');
      expect(upd.conflicts[0]).toMatchObject({
        type: 'UPDATE_DELETE',
        reason: 'delete_wins',
        resolution: 'server_wins',
        server_version: { operation: 'delete', deleted: true },
      });
      // well after the window, a newer update resurrects it
      const later = await a.pushOk([{ ...deviceChange(e, 'A3', isoAt(t0 + 5000)), sync_id: 'a' }]);
      expect(later.applied[0]?.status).toBe('applied');
      expect((await ts.server.entities('home-lww')).find((x) => x.entity_id === e)?.deleted).toBe(false);
    });

    it('a create over a live entity is a CREATE_CREATE conflict', async () => {
      const e = id();
      await a.pushOk([{ ...deviceChange(e, 'A', isoAt(t0 + 5000)), operation: 'create' }]);
      const res = await b.pushOk([{ ...deviceChange(e, 'B', isoAt(t0)), operation: 'create' }]);
      expect(res.conflicts[0]).toMatchObject({ type: 'CREATE_CREATE', resolution: 'server_wins' });
    });

    it('reports a push conflict again on the pusher next sync_delta (first page)', async () => {
      const c = new TestClient(ts.url, await ts.addClient('home-lww'));
      await c.login();
      const { serverTime } = await c.pullAll(null);
      const e = id();
      await a.pushOk([deviceChange(e, 'A', isoAt(t0 + 10_000))]);
      const lost = await c.pushOk([deviceChange(e, 'C', isoAt(t0))]);
      expect(lost.conflicts).toHaveLength(1);
      const next = await c.pullAll(serverTime);
      expect(next.conflicts).toEqual(lost.conflicts);
      const after = await c.pullAll(next.serverTime);
      expect(after.conflicts).toEqual([]);
    });
  });

  describe(`the 1 s window is not transitive (docs/protocol.md §Conflicts) [${backend.name}]`, () => {
    it('resolves versions within a second of each other by arrival order', async () => {
      const ts = await startTestServer({}, { backend });
      try {
        const t0 = Date.parse('2026-01-01T00:00:00Z');
        const versions = {
          X: { at: t0, syncId: 'z' },
          Y: { at: t0 + 600, syncId: 'm' },
          Z: { at: t0 + 1200, syncId: 'a' },
        };
        async function finalAfter(home: string, order: (keyof typeof versions)[]): Promise<unknown> {
          const c = new TestClient(ts.url, await ts.addClient(home));
          await c.login();
          for (const name of order) {
            const v = versions[name];
            await c.pushOk([{ ...deviceChange('dev-t', name, isoAt(v.at)), sync_id: v.syncId }]);
          }
          return (await ts.server.entities(home))[0]?.data.name;
        }
        expect(await finalAfter('home-xyz', ['X', 'Y', 'Z'])).toBe('Z');
        expect(await finalAfter('home-yzx', ['Y', 'Z', 'X'])).toBe('X');
      } finally {
        await ts.close();
      }
    });
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../src/protocol/index.js';
import type { ServerConfigInput } from '../../src/server/index.js';
import { startTestServer, type TestServer, type TestServerOptions } from '../helpers/server.js';
import { forEachBackend, type Backend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt } from './client.js';

const started: TestServer[] = [];
async function start(backend: Backend, overrides: ServerConfigInput = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const ts = await startTestServer(overrides, { ...options, backend });
  started.push(ts);
  return ts;
}
afterEach(async () => {
  while (started.length) await started.pop()?.close();
});

function del(id: string, at: number): Record<string, unknown> {
  return { entity_type: 'device', entity_id: id, operation: 'delete', updated_at: isoAt(at), client_sync_id: `del-${id}-${at}` };
}

forEachBackend((backend) => {
  describe(`tombstones and INVALID_SYNC_STATE [${backend.name}]`, () => {
    it('purges tombstones every client has acked past, and a client behind the purge gets 409', async () => {
      const ts = await start(backend);
      const a = new TestClient(ts.url, await ts.addClient('home-t'));
      const b = new TestClient(ts.url, await ts.addClient('home-t'));
      await a.login();
      await b.login();
      const t = Date.now();
      await a.pushOk([deviceChange('dev-1', 'One', isoAt(t)), deviceChange('dev-2', 'Two', isoAt(t))]);
      const bBase = await b.pullAll(null);
      await a.pushOk([del('dev-1', t + 2000)]);
      const aSync = await a.pullAll(null);
      await a.ack(aSync.serverTime);
      // b has not acked: the tombstone stays
      expect(await ts.server.purgeTombstones()).toBe(0);
      const bSync = await b.pullAll(bBase.serverTime, { include_deleted: true });
      expect(bSync.changes.map((c) => c.operation)).toEqual(['delete']);
      await b.ack(bSync.serverTime);
      expect(await ts.server.purgeTombstones()).toBe(1);
      expect((await ts.server.entities('home-t')).map((e) => e.entity_id)).toEqual(['dev-2']);
      // b is up to date: fine; a stale watermark from before the purge: INVALID_SYNC_STATE
      expect((await b.syncRequest({ last_sync: bSync.serverTime })).status).toBe(200);
      const stale = await b.syncRequest({ last_sync: bBase.serverTime });
      expect(stale.status).toBe(409);
      expect(stale.json.code).toBe('INVALID_SYNC_STATE');
      const full = await b.pullAll(null);
      expect(full.changes.map((c) => c.entity_id)).toEqual(['dev-2']);
    });

    it('purges tombstones older than the retention even without acks', async () => {
      let now = Date.now();
      const ts = await start(backend, { tombstones: { retentionSeconds: 60, purgeIntervalSeconds: 3600 } }, { clock: () => now });
      const a = new TestClient(ts.url, await ts.addClient('home-r'));
      await a.login();
      const base = await a.pullAll(null);
      await a.pushOk([deviceChange('dev-1', 'One', isoAt(now)), del('dev-gone', now)]);
      now += 30_000;
      expect(await ts.server.purgeTombstones()).toBe(0);
      // 61 s past the real time of the push (PostgreSQL stamps seqs with the database's clock, not the test's)
      now = Date.now() + 61_000;
      expect(await ts.server.purgeTombstones()).toBe(1);
      const res = await a.syncRequest({ last_sync: base.serverTime });
      expect(res.status).toBe(409);
      expect(res.json.code).toBe('INVALID_SYNC_STATE');
    });

    it('refuses a last_sync later than anything issued (restored server) with 409', async () => {
      const ts = await start(backend);
      const a = new TestClient(ts.url, await ts.addClient('home-f'));
      await a.login();
      // a fresh server never issued any watermark: a client's old last_sync is from another (lost) history
      const fresh = await a.syncRequest({ last_sync: isoAt(Date.now() - 60_000) });
      expect(fresh.status).toBe(409);
      const { serverTime } = await a.pullAll(null);
      expect((await a.syncRequest({ last_sync: serverTime })).status).toBe(200);
      const res = await a.syncRequest({ last_sync: isoAt(Date.now() + 3_600_000) });
      expect(res.status).toBe(409);
      expect(res.json.code).toBe('INVALID_SYNC_STATE');
    });

    it('keeps the watermark across a restart on the same file', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'ib-restart-'));
      try {
        const first = await startTestServer({}, { backend, dataDir });
        const creds = await first.addClient('home-x');
        const a = new TestClient(first.url, creds);
        await a.login();
        await a.pushOk([deviceChange('dev-1', 'One', isoAt(Date.now())), deviceChange('dev-0', 'Zero', isoAt(Date.now()))]);
        const { serverTime } = await a.pullAll(null);
        const paged = await a.syncRequest({ last_sync: null, limit: 1 });
        expect(paged.json.more).toBe(true);
        await first.close();
        const second = await startTestServer({}, first.sameStore);
        try {
          const again = new TestClient(second.url, creds);
          await again.login();
          const res = await again.syncRequest({ last_sync: serverTime });
          expect(res.status).toBe(200);
          // a paged sync continues across the restart
          const rest = await again.syncRequest({ last_sync: null, limit: 1, cursor: paged.json.cursor });
          expect(rest.status).toBe(200);
          expect(rest.json.server_time).toBe(paged.json.server_time);
          expect(rest.json.changes).toHaveLength(1);
          expect(rest.json.changes[0].entity_id).not.toBe(paged.json.changes[0].entity_id);
          const other = new TestClient(second.url, await second.addClient('home-x'));
          await other.login();
          await other.pushOk([deviceChange('dev-2', 'Two', isoAt(Date.now()))]);
          const seq = (await second.server.entities('home-x')).find((e) => e.entity_id === 'dev-2')?.seq ?? 0;
          expect(seq).toBeGreaterThan(parseTimestamp(serverTime) ?? Infinity);
          const delta = await again.pullAll(serverTime);
          expect(delta.changes.map((c) => c.entity_id)).toEqual(['dev-2']);
        } finally {
          await second.close();
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });

  describe(`history retention [${backend.name}]`, () => {
    it('forgets push results and conflicts older than the retention; a late retry is decided by LWW again', async () => {
      let now = Date.now();
      const ts = await start(backend, { tombstones: { retentionSeconds: 60, purgeIntervalSeconds: 3600 } }, { clock: () => now });
      const a = new TestClient(ts.url, await ts.addClient('home-h'));
      const b = new TestClient(ts.url, await ts.addClient('home-h'));
      await a.login();
      await b.login();
      const base = deviceChange('dev-1', 'One', isoAt(now));
      const change = { ...base, sync_id: 'v1' };
      await a.pushOk([change]);
      await b.pushOk([deviceChange('dev-1', 'Older', isoAt(now - 10_000))]); // a conflict for b
      const history = async (): Promise<{ results?: number; conflicts?: number }> => {
        const ran = await ts.server.store.maintain({ retentionSeconds: 60, nonceWindowSeconds: 300, minIntervalSeconds: 0, historyRetentionSeconds: 86_400, historyMaxPerEntity: 200 });
        return { results: ran?.results, conflicts: ran?.conflicts };
      };
      expect(await history()).toEqual({ results: 0, conflicts: 0 });
      now = Date.now() + 61_000; // past the real time of the pushes too (PostgreSQL's seqs come from its clock)
      expect(await history()).toEqual({ results: 2, conflicts: 1 });
      expect(await ts.server.applicationCount(a.creds.client_id, base.client_sync_id as string)).toBe(0);
      const retry = await a.pushOk([change]);
      expect(retry.applied[0]).toMatchObject({ status: 'applied', server_sync_id: 'v1' });
      expect((await ts.server.entities('home-h'))[0]?.data.name).toBe('One');
    });
  });
});

/**
 * Convergence digest (extension, docs/protocol.md §Convergence digest) on the real server: a client that announced
 * `digest` gets the digest of its home as of server_time with every sync_delta (incrementally maintained: equal to
 * one computed from scratch), per-bucket digests when asked, a repair read of chosen buckets; a seed peer gets none.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketOf, DigestBuilder, digestHex } from '../../src/protocol/index.js';
import pg from 'pg';
import { SqliteStore } from '../../src/server/store/sqlite-store.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, stateChange } from './client.js';

async function scratchDigest(ts: TestServer, home: string): Promise<DigestBuilder> {
  const builder = new DigestBuilder();
  for (const e of await ts.server.entities(home)) if (!e.deleted) builder.add(e.entity_type, e.entity_id, e.data);
  return builder;
}

forEachBackend((backend) => {
describe(`convergence digest [${backend.name}]`, () => {
  let ts: TestServer;
  let a: TestClient;
  let b: TestClient;
  const home = 'home-d';
  const t0 = Date.now() - 3_600_000;
  beforeAll(async () => {
    ts = await startTestServer({ pageSize: 10 }, { backend });
    a = new TestClient(ts.url, await ts.addClient(home));
    b = new TestClient(ts.url, await ts.addClient(home));
    await Promise.all([a.login(), b.login()]);
  });
  afterAll(async () => {
    await ts.close();
  });

  it('every delta carries the digest of the home as of server_time, maintained incrementally', async () => {
    const empty = await a.syncRequest({ last_sync: null, caps: ['digest'] });
    expect(empty.json.digest).toBe(digestHex(0n));
    await a.pushOk([stateChange('state-1', { power: 'on' }, isoAt(t0)), deviceChange('dev-1', 'Lamp', isoAt(t0)), stateChange('state-2', { t: 20 }, isoAt(t0))]);
    await b.pushOk([stateChange('state-1', { brightness: 5 }, isoAt(t0 + 1000)), { ...deviceChange('dev-1', 'Lamp', isoAt(t0 + 2000)), operation: 'delete', data: {} }]);
    const res = await b.syncRequest({ last_sync: null, caps: ['digest'], digest_buckets: true });
    expect(res.json.digest).toBe(digestHex((await scratchDigest(ts, home)).home()));
    expect(res.json.digest_buckets).toEqual((await scratchDigest(ts, home)).buckets.map(digestHex));
    // A client without the capability gets the seed's delta: no digest, empty conflicts and null cursor spelled out.
    const seed = await b.syncRequest({ last_sync: null });
    expect(seed.json.digest).toBeUndefined();
    expect(seed.json).toMatchObject({ conflicts: expect.any(Array), cursor: null });
  });

  it('a paged delta gives on its last page the digest as of its server_time, even if a push lands in between', async () => {
    for (let i = 0; i < 25; i++) await a.pushOk([stateChange(`state-page-${i}`, { i }, isoAt(t0))]);
    const first = await b.syncRequest({ last_sync: null, caps: ['digest'] });
    expect(first.json.more).toBe(true);
    expect(first.json.digest).toBeUndefined();
    const asOfH = digestHex((await scratchDigest(ts, home)).home());
    await a.pushOk([stateChange('state-late', { late: true }, isoAt(t0))]);
    let page = first;
    while (page.json.more) page = await b.syncRequest({ last_sync: null, caps: ['digest'], cursor: page.json.cursor });
    expect(page.json.digest).toBe(asOfH);
  });

  it('a repair reads only the asked buckets, whole; buckets with last_sync is 400', async () => {
    const target = bucketOf('entity_state', 'state-2');
    const res = await b.pullAll(null, { buckets: [target] });
    expect(res.changes.length).toBeGreaterThan(0);
    expect(res.changes.every((c) => bucketOf(c.entity_type, c.entity_id) === target)).toBe(true);
    expect(res.changes.map((c) => c.entity_id)).toContain('state-2');
    const bad = await b.syncRequest({ last_sync: res.serverTime, buckets: [target] });
    expect(bad).toMatchObject({ status: 400, json: { code: 'BAD_REQUEST' } });
    expect((await b.syncRequest({ last_sync: null, buckets: [16] })).status).toBe(400);
  });
});

describe(`digest of rows written before the digest existed [${backend.name}]`, () => {
  it('is filled in when the server opens the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ib-digest-'));
    try {
      const first = await startTestServer({}, { dataDir: dir, backend });
      const c = new TestClient(first.url, await first.addClient('home-old'));
      await c.login();
      await c.pushOk([stateChange('state-a', { x: 1 }, isoAt(Date.now() - 1000)), deviceChange('dev-a', 'A', isoAt(Date.now() - 1000))]);
      const expected = digestHex((await scratchDigest(first, 'home-old')).home());
      expect((await first.server.store.digest('home-old')).home).toBe(expected);
      const forget = 'UPDATE entities SET bucket = -1, hash = NULL; DELETE FROM home_digests;';
      const store = first.server.store;
      if (store instanceof SqliteStore) store.local.db.exec(forget);
      else {
        const admin = new pg.Client({ connectionString: first.databaseUrl });
        await admin.connect();
        await admin.query(forget);
        await admin.end();
      }
      await first.close();
      const second = await startTestServer({}, first.sameStore);
      expect((await second.server.store.digest('home-old')).home).toBe(expected);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
});

/**
 * Several server instances on one PostgreSQL database behave as one server (docs/protocol.md §Several instances):
 * real servers over HTTP at port 0, each with its own pool and LISTEN connection, on a fresh database of the run's
 * private cluster. A token issued by one is accepted by all; a nonce used on one is a replay on every other; a cursor
 * from one continues on another; a live wait held on one wakes when an app commits on another; two instances pushing
 * into one home while a third pages through syncs never make it miss or repeat a change; the maintenance job runs
 * once across instances; a database newer than the build is refused at start.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce } from '../../src/protocol/index.js';
import { POSTGRES } from '../helpers/backends.js';
import { freshDatabase } from '../helpers/pg.js';
import { SERVER_CLI, spawnServer } from '../helpers/server-process.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt, send, stateChange } from './client.js';

const RELAXED = { rateLimit: { ratePerSecond: 10_000, burst: 10_000 }, live: { maxWaitSeconds: 20 } };

describe('several instances on one PostgreSQL database', () => {
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  beforeAll(async () => {
    a = await startTestServer(RELAXED, { backend: POSTGRES });
    b = await startTestServer(RELAXED, a.sameStore);
    c = await startTestServer(RELAXED, a.sameStore);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  /** The same client (credential and tokens) talking to another instance. */
  const on = (ts: TestServer, client: TestClient): TestClient => {
    const moved = new TestClient(ts.url, client.creds, client.defaults);
    moved.token = client.token;
    moved.refreshToken = client.refreshToken;
    return moved;
  };

  it('accepts on B a token issued by A; a refresh token rotated on A is spent on B', async () => {
    const onA = new TestClient(a.url, await b.addClient('home-tok'));
    await onA.login();
    const res = await on(b, onA).syncRequest({ last_sync: null });
    expect(res.status).toBe(200);
    const spent = onA.refreshToken;
    const rotated = await send(a.url, '/api/v1/auth/refresh', { refresh_token: spent });
    expect(rotated.status).toBe(200);
    const again = await send(b.url, '/api/v1/auth/refresh', { refresh_token: spent });
    expect(again.status).toBe(401);
    expect(again.json.code).toBe('UNAUTHORIZED');
    // the access token issued with the spent refresh token is revoked everywhere too
    expect((await on(c, onA).syncRequest({ last_sync: null })).status).toBe(401);
  });

  it('refuses on B a nonce already used on A (and on C one used on B)', async () => {
    const creds = await a.addClient('home-nonce');
    const signed = new TestClient(a.url, creds, { sign: creds });
    await signed.login();
    const nonce = newNonce();
    expect((await signed.syncRequest({}, { nonce })).status).toBe(200);
    const replay = await on(b, signed).syncRequest({}, { nonce });
    expect(replay.status).toBe(401);
    expect(replay.json.code).toBe('BAD_SIGNATURE');
    expect(replay.json.message).toContain('replayed');
    const second = newNonce();
    expect((await on(b, signed).syncRequest({}, { nonce: second })).status).toBe(200);
    expect((await on(c, signed).syncRequest({}, { nonce: second })).json.message).toContain('replayed');
  });

  it('continues on B and C a paged sync whose cursor A issued', async () => {
    const gw = new TestClient(a.url, await a.addClient('home-page'));
    await gw.login();
    await gw.pushOk(Array.from({ length: 9 }, (_, i) => deviceChange(`dev-${i}`, `Device ${i}`, isoAt(Date.now()))));
    const reader = new TestClient(a.url, await a.addClient('home-page'));
    await reader.login();
    const first = await reader.syncRequest({ last_sync: null, limit: 4 });
    expect(first.json.more).toBe(true);
    const second = await on(b, reader).syncRequest({ last_sync: null, limit: 4, cursor: first.json.cursor });
    expect(second.status).toBe(200);
    expect(second.json.server_time).toBe(first.json.server_time);
    const third = await on(c, reader).syncRequest({ last_sync: null, limit: 4, cursor: second.json.cursor });
    expect(third.json.more).toBe(false);
    const ids = [...first.json.changes, ...second.json.changes, ...third.json.changes].map((ch: { entity_id: string }) => ch.entity_id);
    expect(ids.sort()).toEqual(Array.from({ length: 9 }, (_, i) => `dev-${i}`).sort());
  });

  it('wakes a live wait held on A when an app commits on B, within the latency goal', async () => {
    const gw = new TestClient(a.url, await a.addClient('home-wake'));
    const app = new TestClient(b.url, await b.addClient('home-wake'));
    await gw.login();
    await app.login();
    const { serverTime } = await gw.pullAll(null);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const w = (await gw.pullAll(serverTime)).serverTime;
      const held = gw.syncRequest({ last_sync: w, wait: 20 });
      await new Promise((r) => setTimeout(r, 300)); // held by now (an empty delta)
      const committed = performance.now();
      await app.pushOk([stateChange(`lamp-${i}`, { on: i }, isoAt(Date.now()))]);
      const res = await held;
      waits.push(performance.now() - committed);
      expect(res.status).toBe(200);
      expect(res.json.live.reason).toBe('change');
      expect(res.json.changes.map((ch: { entity_id: string }) => ch.entity_id)).toContain(`lamp-${i}`);
    }
    // Woken by B's commit, not by the 20 s deadline (reason 'change'); the latency itself is a benchmark figure
    // (bench:server, cross-instance wake p50/p99), not a timed test.
    expect(waits).toHaveLength(5);
    expect(a.server.liveStats().answered.change).toBeGreaterThanOrEqual(5);
  });

  it('two instances pushing into one home while a third pages through syncs: nothing missed, nothing repeated', async () => {
    const home = 'home-race';
    const writers = [new TestClient(a.url, await a.addClient(home)), new TestClient(b.url, await b.addClient(home))];
    const pager = new TestClient(c.url, await c.addClient(home));
    for (const w of [...writers, pager]) await w.login();
    const inserted = new Set<string>();
    let writing = true;
    const write = async (w: TestClient, name: string): Promise<void> => {
      for (let i = 0; writing; i++) {
        const id = `${name}-${i}`;
        // a new entity each time, and an overwrite of a shared one (it moves above every watermark issued before)
        await w.pushOk([deviceChange(id, id, isoAt(Date.now())), stateChange(`shared-${i % 3}`, { by: name, i }, isoAt(Date.now()))]);
        inserted.add(id);
      }
    };
    const seen = new Map<string, number>();
    let lastSync: string | null = null;
    let rounds = 0;
    const pageAll = async (): Promise<void> => {
      const delta = await pager.pullAll(lastSync, { limit: 5 });
      const once = new Set<string>();
      for (const ch of delta.changes) {
        const key = `${ch.entity_type}:${ch.entity_id}`;
        expect(once.has(key), `${key} twice in one sync`).toBe(false);
        once.add(key);
        if (ch.entity_type === 'device') seen.set(ch.entity_id, (seen.get(ch.entity_id) ?? 0) + 1);
      }
      lastSync = delta.serverTime;
      rounds += 1;
    };
    const running = writers.map((w, i) => write(w, `w${i}`));
    const started = Date.now();
    while (Date.now() - started < 6_000 || rounds < 20) await pageAll();
    writing = false;
    await Promise.all(running);
    await pageAll(); // after the last commit: everything is in
    expect(rounds).toBeGreaterThanOrEqual(20);
    expect(inserted.size).toBeGreaterThan(40);
    const missed = [...inserted].filter((id) => !seen.has(id));
    const repeated = [...seen].filter(([, n]) => n !== 1);
    expect(missed).toEqual([]);
    expect(repeated).toEqual([]);
    expect(seen.size).toBe(inserted.size);
  });

  it('runs the maintenance job once when every instance asks at the same moment', async () => {
    const options = { retentionSeconds: 3600, nonceWindowSeconds: 300, minIntervalSeconds: 3600, historyRetentionSeconds: 86_400, historyMaxPerEntity: 200 };
    const ran = await Promise.all([a, b, c].map((ts) => ts.server.store.maintain(options)));
    expect(ran.filter((r) => r !== undefined)).toHaveLength(1);
    // and none again within the interval, whichever instance asks
    expect(await Promise.all([a, b, c].map((ts) => ts.server.store.maintain(options)))).toEqual([undefined, undefined, undefined]);
  });
});

describe('schema versions', () => {
  it('a server refuses to start on a database whose schema is newer than it knows', async () => {
    const first = await startTestServer({}, { backend: POSTGRES });
    const url = first.databaseUrl ?? '';
    await first.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query('INSERT INTO ib_schema_version (version) SELECT max(version) + 1 FROM ib_schema_version');
    } finally {
      await admin.end();
    }
    await expect(startTestServer({}, { databaseUrl: url })).rejects.toThrow(/newer than this server knows/);
  });
});

describe('the command line', () => {
  it('`server --database-url` serves from PostgreSQL: two processes on one database, a credential from add-client, a token of one accepted by the other, no password in the log', async () => {
    const url = await freshDatabase('cli');
    const dir = mkdtempSync(join(tmpdir(), 'ib-pg-cli-'));
    const servers = await Promise.all(['a', 'b'].map((name) => spawnServer({ dataDir: join(dir, name), databaseUrl: url })));
    try {
      const out = execFileSync(process.execPath, [SERVER_CLI, 'server', 'add-client', '--database-url', url, '--home', 'home-cli'], { encoding: 'utf8' });
      const creds = JSON.parse(out) as { client_id: string; client_secret: string; home_id: string };
      const [first, second] = servers.map((p) => new TestClient(p.url, creds)) as [TestClient, TestClient];
      await first.login();
      second.token = first.token;
      await first.pushOk([deviceChange('dev-cli', 'Through A', isoAt(Date.now()))]);
      const delta = await second.pullAll(null);
      expect(delta.changes.map((ch) => ch.entity_id)).toEqual(['dev-cli']);
      // a live wait held on process A wakes when the other process commits
      const app = new TestClient(servers[1]?.url ?? '', JSON.parse(
        execFileSync(process.execPath, [SERVER_CLI, 'server', 'add-client', '--database-url', url, '--home', 'home-cli'], { encoding: 'utf8' }),
      ) as { client_id: string; client_secret: string; home_id: string });
      await app.login();
      const held = first.syncRequest({ last_sync: delta.serverTime, wait: 20 });
      await new Promise((r) => setTimeout(r, 300));
      await app.pushOk([deviceChange('dev-app', 'Through B', isoAt(Date.now()))]);
      const woken = await held;
      expect(woken.json.live.reason).toBe('change');
      const password = new URL(url).password;
      expect(password.length).toBeGreaterThan(0);
      for (const p of servers) expect(p.lines.join('\n')).not.toContain(password);
    } finally {
      await Promise.all(servers.map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Per-home watermarks (docs/protocol.md §Watermark and delta): nothing a client presents moves the server's floor,
 * its clock or any home's watermark; a last_sync or cursor later than what was issued to the client's home is 409
 * INVALID_SYNC_STATE without side effects; across a crash the floor stays above anything issued (persisted + slack),
 * and after a clean close the persisted values are exact.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatTimestamp, parseTimestamp } from '../../src/protocol/index.js';
import { sqliteStoreOf, startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt } from './client.js';

const RELAXED = { rateLimit: { ratePerSecond: 10_000, burst: 10_000 } };
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ib-wm-'));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function server(dataDir: string): Promise<TestServer> {
  const ts = await startTestServer(RELAXED, { dataDir });
  cleanup.push(() => ts.close());
  return ts;
}

const us = (t: string): number => parseTimestamp(t) ?? Number.NaN;
const plus = (t: string, micros: number): string => formatTimestamp(us(t) + micros);
const issuedThrough = (ts: TestServer, home: string): unknown =>
  sqliteStoreOf(ts.server).db.prepare('SELECT issued_through FROM homes WHERE home_id = ?').pluck().get(home);

async function client(ts: TestServer, creds: Awaited<ReturnType<TestServer['addClient']>>): Promise<TestClient> {
  const c = new TestClient(ts.url, creds);
  await c.login();
  return c;
}

describe('watermarks: nothing a client sends moves a clock', () => {
  it('a last_sync ahead of what was issued to the home is 409 INVALID_SYNC_STATE every time, and moves nothing', async () => {
    const ts = await server(dir());
    const a = await client(ts, await ts.addClient('home-A'));
    const b = await client(ts, await ts.addClient('home-B'));
    const issued = (await b.pullAll(null)).serverTime;
    const floor = sqliteStoreOf(ts.server).sequencer.current();
    const persisted = issuedThrough(ts, 'home-B');
    // the attack of the report: previous server_time + 4.9 s, over and over (and just 1 µs ahead)
    let last = issued;
    for (let i = 0; i < 40; i++) {
      const res = await b.syncRequest({ last_sync: plus(last, 4_900_000) });
      expect(res.status).toBe(409);
      expect(res.json.code).toBe('INVALID_SYNC_STATE');
      last = plus(last, 4_900_000);
    }
    expect((await b.syncRequest({ last_sync: plus(issued, 1) })).json.code).toBe('INVALID_SYNC_STATE');
    expect(sqliteStoreOf(ts.server).sequencer.current()).toBe(floor);
    expect(issuedThrough(ts, 'home-B')).toBe(persisted);
    expect(sqliteStoreOf(ts.server).watermarks.bound('home-B')).toBe(us(issued));
    // another home's server_time is real time, and B's own watermark still works
    const fromA = await a.pullAll(null);
    expect(Math.abs(us(fromA.serverTime) / 1000 - Date.now())).toBeLessThan(1000);
    expect((await b.syncRequest({ last_sync: issued })).status).toBe(200);
  });

  it('a watermark issued to another home is no watermark of this home', async () => {
    const ts = await server(dir());
    const a = await client(ts, await ts.addClient('home-A'));
    const b = await client(ts, await ts.addClient('home-B'));
    await b.pullAll(null);
    await new Promise((r) => setTimeout(r, 5));
    const fromA = (await a.pullAll(null)).serverTime;
    const res = await b.syncRequest({ last_sync: fromA });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe('INVALID_SYNC_STATE');
    expect((await a.syncRequest({ last_sync: fromA })).status).toBe(200);
  });

  it('a sync_ack later than anything issued to the home is 400 and records nothing', async () => {
    const ts = await server(dir());
    const b = await client(ts, await ts.addClient('home-B'));
    const issued = (await b.pullAll(null)).serverTime;
    const res = await b.ack(plus(issued, 1_000_000));
    expect(res.status).toBe(400);
    expect(sqliteStoreOf(ts.server).accounts.getClient(b.creds.client_id)?.lastAckWatermark).toBeNull();
    expect((await b.ack(issued)).status).toBe(200);
  });

  it('a cursor issued after the backup the server was restored from is 409 INVALID_SYNC_STATE', async () => {
    const live = dir();
    let ts = await server(live);
    const creds = await ts.addClient('home-C');
    const pusher = await client(ts, creds);
    await pusher.pushOk([deviceChange('d-1', 'One', isoAt(Date.now())), deviceChange('d-2', 'Two', isoAt(Date.now()))]);
    await pusher.pullAll(null);
    await ts.close();
    const backup = dir();
    cpSync(live, backup, { recursive: true });
    ts = await server(live);
    await new Promise((r) => setTimeout(r, 20)); // anything issued now is later than what the backup knows
    const c = await client(ts, creds);
    const first = await c.syncRequest({ last_sync: null, limit: 1 });
    expect(first.json.more).toBe(true);
    await ts.close();
    const restored = await server(backup);
    const again = await client(restored, creds);
    const res = await again.syncRequest({ last_sync: null, limit: 1, cursor: first.json.cursor });
    expect(res.status).toBe(409);
    expect(res.json.code).toBe('INVALID_SYNC_STATE');
  });

  it('after a crash, a watermark issued but not yet persisted is still accepted, and later commits sort after it', async () => {
    const dataDir = dir();
    const ts = await startTestServer(RELAXED, { dataDir });
    const creds = await ts.addClient('home-D');
    const c = await client(ts, creds);
    const h1 = (await c.pullAll(null)).serverTime; // persisted (first issue)
    const h2 = (await c.pullAll(null)).serverTime; // within the slack: not persisted
    expect(us(h2)).toBeGreaterThan(us(h1));
    expect(Number(issuedThrough(ts, 'home-D'))).toBeLessThan(us(h2));
    ts.server.destroy(); // crash: nothing flushed
    const after = await server(dataDir);
    expect(sqliteStoreOf(after.server).sequencer.current()).toBeGreaterThanOrEqual(us(h2));
    const c2 = await client(after, creds);
    const delta = await c2.syncRequest({ last_sync: h2 });
    expect(delta.status).toBe(200);
    const other = await client(after, await after.addClient('home-D'));
    await other.pushOk([deviceChange('d-after', 'After the crash', isoAt(Date.now()))]);
    const pulled = await c2.pullAll(h2);
    expect(pulled.changes.map((ch) => ch.entity_id)).toContain('d-after');
  });

  it('after a clean close the persisted watermarks are exact: no slack, and server_time stays real', async () => {
    const dataDir = dir();
    const ts = await startTestServer(RELAXED, { dataDir });
    const creds = await ts.addClient('home-E');
    const c = await client(ts, creds);
    await c.pullAll(null);
    const h = (await c.pullAll(null)).serverTime;
    await ts.close();
    const after = await server(dataDir);
    const c2 = await client(after, creds);
    expect((await c2.syncRequest({ last_sync: plus(h, 1) })).json.code).toBe('INVALID_SYNC_STATE');
    const res = await c2.syncRequest({ last_sync: h });
    expect(res.status).toBe(200);
    expect(Math.abs(us(res.json.server_time) / 1000 - Date.now())).toBeLessThan(1000);
    expect(sqliteStoreOf(after.server).sequencer.current() / 1000).toBeLessThanOrEqual(Date.now() + 5);
  });
});

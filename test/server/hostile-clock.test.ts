/**
 * End to end, the attack of the security review: a client of home B sends sync_request with last_sync = its previous
 * server_time + 4.9 s, as fast as it can. Before, each one raised the server's global floor (902 s ahead of real time
 * in 10 s, persisted), and home A's gateway followed that server_time, stamped states in the future, had its own
 * requests refused as stale signatures and went offline. Now: every hostile request is 409 INVALID_SYNC_STATE, the
 * server's server_time stays within a second of real time — also after a clean restart and after a crash on the same
 * data dir —, and home A's real gateway keeps stamping in real time and stays online.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatTimestamp, parseTimestamp } from '../../src/protocol/index.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { startProxy } from '../helpers/proxy.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { send, TestClient } from './client.js';

const CONFIG = { hmac: { required: true }, rateLimit: { ratePerSecond: 10_000, burst: 10_000 } };
const HOME_A = 'home-A';
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const us = (t: string): number => parseTimestamp(t) ?? Number.NaN;

/** How far (ms) the server's server_time is from real time now (health, and a fresh sync of the hostile client). */
async function serverSkewMs(ts: TestServer, hostile: TestClient): Promise<number> {
  const health = await send(ts.url, '/api/v1/health', undefined, { method: 'GET' });
  const fresh = await hostile.syncRequest({ last_sync: null });
  const now = Date.now();
  return Math.max(Math.abs(us(health.json.server_time) / 1000 - now), Math.abs(us(fresh.json.server_time) / 1000 - now));
}

async function loggedIn(ts: TestServer, creds: Awaited<ReturnType<TestServer['addClient']>>): Promise<TestClient> {
  const c = new TestClient(ts.url, creds, { sign: creds });
  await c.login();
  return c;
}

describe('a hostile client cannot move time for another home', () => {
  it('home A’s gateway stamps in real time and stays online while a home-B client pumps last_sync ahead, across restarts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ib-hostile-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let ts = await startTestServer(CONFIG, { dataDir });
    cleanup.push(() => ts.close());
    const credsA = await ts.addClient(HOME_A);
    const credsB = await ts.addClient('home-B');
    const proxy = await startProxy({ target: ts.url });
    cleanup.push(() => proxy.close());
    const gw = await startTestGateway({ serverUrl: proxy.url, clientId: credsA.client_id, clientSecret: credsA.client_secret });
    cleanup.push(() => gw.close());
    const device = await gw.connect('lamp-dev');
    let counter = 0;

    /** Publishes a new state and returns how far the server's stamp of it is from the real time it was published. */
    const stampSkewMs = async (): Promise<number> => {
      counter += 1;
      const at = Date.now();
      await device.publishAsync('devices/lamp/state', JSON.stringify({ counter }), { qos: 1 });
      const want = counter;
      let stamp = 0;
      await waitFor(async () => {
        const e = (await ts.server.entities(HOME_A)).find((x) => x.entity_type === 'entity_state' && x.entity_id === 'lamp');
        if ((e?.data.state as { counter?: number } | undefined)?.counter !== want) return false;
        stamp = e?.updated_at ?? 0;
        return true;
      }, 15_000, `state ${want} on the server`);
      return Math.abs(stamp / 1000 - at);
    };

    /** The attack for `ms`: returns the statuses it got and the gateway's sync modes meanwhile. */
    const pump = async (hostile: TestClient, ms: number): Promise<{ statuses: Set<number>; modes: Set<string>; sent: number }> => {
      const statuses = new Set<number>();
      const modes = new Set<string>();
      let last = (await hostile.pullAll(null)).serverTime;
      let sent = 0;
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const res = await hostile.syncRequest({ last_sync: formatTimestamp(us(last) + 4_900_000) });
        statuses.add(res.status);
        if (res.status === 200) last = res.json.server_time;
        sent += 1;
        if (sent % 25 === 0) {
          counter += 1;
          await device.publishAsync('devices/lamp/state', JSON.stringify({ counter }), { qos: 1 });
        }
        modes.add(gw.daemon.status().scheduler?.mode ?? 'none');
      }
      return { statuses, modes, sent };
    };

    expect(await stampSkewMs()).toBeLessThan(1500); // the gateway is synced and stamps in server (= real) time

    const hostile = await loggedIn(ts, credsB);
    const first = await pump(hostile, 3_000);
    expect(first.sent).toBeGreaterThan(50);
    expect([...first.statuses]).toEqual([409]);
    expect([...first.modes]).toEqual(['online']);
    expect(await serverSkewMs(ts, hostile)).toBeLessThan(1000);
    expect(await stampSkewMs()).toBeLessThan(1500);

    // a clean restart on the same data dir, then a crash and a restart: the attack still moves nothing
    for (const abrupt of [false, true]) {
      if (abrupt) ts.server.destroy();
      else await ts.close();
      ts = await startTestServer(CONFIG, { dataDir });
      proxy.setTarget(ts.url);
      const again = await loggedIn(ts, credsB);
      expect(await serverSkewMs(ts, again)).toBeLessThan(1000);
      const round = await pump(again, 1_500);
      expect([...round.statuses]).toEqual([409]);
      expect(await serverSkewMs(ts, again)).toBeLessThan(1000);
      expect(await stampSkewMs()).toBeLessThan(1500);
      expect(gw.daemon.status().scheduler?.mode).toBe('online');
    }
  }, 90_000);
});

/**
 * The gateway's clock an hour ahead, an hour behind, and jumping back an hour mid-run (a Pi without RTC
 * after a power cut). Last-write-wins still picks the write that was really last, stamps land in server time, and the
 * watermark (last_sync) only ever holds server times and never moves backwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../src/protocol/index.js';
import { openStoreReader } from '../../src/store/index.js';
import { queryStore } from '../helpers/store-file.js';
import { connectApp } from '../helpers/app-client.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { RELAXED, sleep } from './harness.js';

const HOUR = 3_600_000;
const HOME = 'home-clock';
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function stateOf(ts: TestServer, id: string): Promise<{ counter?: number; updatedAt?: number }> {
  const e = (await ts.server.entities(HOME)).find((x) => x.entity_type === 'entity_state' && x.entity_id === id);
  return { counter: (e?.data.state as { counter?: number } | undefined)?.counter, updatedAt: e?.updated_at };
}

function gatewayCounter(gw: TestGateway, id: string): number | undefined {
  const row = queryStore(gw.daemon, (db) => db.prepare("SELECT data FROM entities WHERE entity_type = 'entity_state' AND entity_id = ?").get(id)) as { data: string } | undefined;
  return row ? (JSON.parse(row.data) as { state: { counter: number } }).state.counter : undefined;
}

async function scenario(initialOffsetMs: number, jumpToMs: number | undefined): Promise<void> {
  const ts = await startTestServer(RELAXED);
  cleanup.push(() => ts.close());
  const creds = await ts.addClient(HOME);
  let offset = initialOffsetMs;
  const gw = await startTestGateway({ serverUrl: ts.url, clientId: creds.client_id, clientSecret: creds.client_secret, now: () => Date.now() + offset });
  cleanup.push(() => gw.close());
  const app = await connectApp(ts.url, await ts.addClient(HOME));
  cleanup.push(() => app.close());
  const path = gw.daemon.store?.path;
  if (path === undefined) throw new Error('no store');
  const db = openStoreReader(path); // the watermark as the file holds it
  cleanup.push(async () => db.close());
  const watermarks: Array<{ at: number; skew: number }> = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const raw = db.syncState.get('last_sync');
      if (typeof raw === 'string') {
        const at = (parseTimestamp(raw) ?? 0) / 1000;
        watermarks.push({ at, skew: at - Date.now() });
      }
      await sleep(50);
    }
  })();
  const device = await gw.connect('clock-dev');

  // A from the gateway; then B from the app, really later; then C from the gateway, really later again.
  await device.publishAsync('devices/c-1/state', JSON.stringify({ counter: 1 }), { qos: 1 });
  await waitFor(async () => (await stateOf(ts, 'c-1')).counter === 1, 10_000, 'A on the server');
  expect(Math.abs(((await stateOf(ts, 'c-1')).updatedAt ?? 0) / 1000 - Date.now())).toBeLessThan(5000); // stamped in server time
  await sleep(1100);
  await app.setState('c-1', { counter: 2 });
  await waitFor(() => gatewayCounter(gw, 'c-1') === 2, 10_000, 'B pulled by the gateway');
  if (jumpToMs !== undefined) offset = jumpToMs; // the local clock steps back mid-run
  await sleep(1100);
  await device.publishAsync('devices/c-1/state', JSON.stringify({ counter: 3 }), { qos: 1 });
  // A stale edit from the app (30 s old) must lose against C.
  await waitFor(async () => (await stateOf(ts, 'c-1')).counter === 3, 10_000, 'C on the server');
  await app.setState('c-1', { counter: -1 }, Date.now() - 30_000);
  await sleep(1500);
  watching = false;
  await watcher;
  expect((await stateOf(ts, 'c-1')).counter).toBe(3);
  expect(gatewayCounter(gw, 'c-1')).toBe(3);
  expect(Math.abs(((await stateOf(ts, 'c-1')).updatedAt ?? 0) / 1000 - Date.now())).toBeLessThan(10_000);
  // Watermark: server times only (within seconds of the real clock, never the skewed one), never backwards.
  expect(watermarks.length).toBeGreaterThan(5);
  for (const w of watermarks) expect(Math.abs(w.skew)).toBeLessThan(15_000);
  for (let i = 1; i < watermarks.length; i += 1) expect(watermarks[i]?.at).toBeGreaterThanOrEqual(watermarks[i - 1]?.at ?? 0);
}

describe('clock chaos', () => {
  it('gateway clock an hour ahead', () => scenario(HOUR, undefined), 40_000);
  it('gateway clock an hour behind', () => scenario(-HOUR, undefined), 40_000);
  it('gateway clock jumping back an hour mid-run', () => scenario(0, -HOUR), 40_000);
});

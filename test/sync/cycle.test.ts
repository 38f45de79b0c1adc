/** End to end against the real server: the five phases, pagination, conflicts each way, downlink without echo. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer, sqliteStoreOf } from '../helpers/server.js';
import { makeGateway, serverState, type TestGateway } from './fixtures.js';

let srv: TestServer;
const gateways: TestGateway[] = [];
const HOME = 'home-1';

beforeEach(async () => {
  srv = await startTestServer({ hmac: { required: true } });
});
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.close();
  await srv.close();
});

function gateway(config: Parameters<typeof makeGateway>[0]['config'] = {}): TestGateway {
  const gw = makeGateway({ url: srv.url, creds: sqliteStoreOf(srv.server).accounts.addClient(HOME), config });
  gateways.push(gw);
  return gw;
}

describe('sync cycle against the real server', () => {
  it('runs all five phases: pull, push, result, ack; the next cycle moves nothing', async () => {
    const a = gateway();
    await a.meta('lamp-1', 'Desk lamp', 'Office');
    await a.state('lamp-1', { power: 'on', brightness: 40 });
    await a.state('plug-1', { power: 'off' });
    const report = await a.client.runCycle();
    expect(report).toMatchObject({ pulled: 0, pushed: 4, applied: 4, conflicts: 0, rejected: 0, pages: 1, fullResync: true });
    expect(report.bytesSent).toBeGreaterThan(0);
    expect(report.bytesReceived).toBeGreaterThan(0);
    const ids = (await srv.server.entities(HOME)).map((e) => `${e.entity_type}:${e.entity_id}`).sort();
    expect(ids).toEqual(['device:lamp-1', 'entity_state:lamp-1', 'entity_state:plug-1', 'room:room-office']);
    expect(await serverState(srv.server, HOME, 'lamp-1')).toEqual({ power: 'on', brightness: 40 });
    expect(a.pending()).toEqual([]);
    expect(a.localSyncId('entity_state', 'lamp-1')).toMatch(/^[0-9a-f]{14}-[0-9a-f]{12}$/);
    // phase 5: the server recorded our ack of the delta's server_time
    const record = sqliteStoreOf(srv.server).accounts.getClient(a.client.config.clientId);
    expect(record?.lastAckWatermark).toBeGreaterThan(0);
    const status = a.store.status();
    expect(status).toMatchObject({ pending: 0, lastSync: report.serverTime, lastResult: { ok: true, pushed: 4 } });
    const again = await a.client.runCycle();
    expect(again).toMatchObject({ pulled: 0, pushed: 0, fullResync: false });
    expect(again.serverTime >= report.serverTime).toBe(true);
  });

  it('pages 5,000 server-side changes and receives each exactly once', async () => {
    const b = gateway();
    await b.states(Array.from({ length: 5000 }, (_, i) => [`dev-${i}`, { value: i }] as const));
    const pushed = await b.client.runCycle();
    expect(pushed.pushed).toBe(5000);
    const a = gateway({ pageLimit: 1000 });
    const report = await a.client.runCycle();
    expect(report.pulled).toBe(5000);
    expect(report.pages).toBeGreaterThanOrEqual(5);
    const rows = a.db.prepare<[], { n: number; d: number }>("SELECT COUNT(*) AS n, COUNT(DISTINCT entity_id) AS d FROM entities WHERE entity_type = 'entity_state'").get();
    expect(rows).toEqual({ n: 5000, d: 5000 });
    expect(a.localState('dev-4321')).toEqual({ value: 4321 });
    expect(a.pending()).toEqual([]);
    expect(a.commands).toEqual([]); // devices this gateway does not hold are not driven
    const next = await a.client.runCycle();
    expect(next.pulled).toBe(0);
  });

  it('conflict, server wins: the local entity takes the server version and a DeviceCommand is emitted', async () => {
    const a = gateway();
    const b = gateway();
    await a.state('lamp', { power: 'off' });
    await a.client.runCycle();
    await b.client.runCycle(); // b learns the lamp
    await a.state('lamp', { power: 'on' }); // older local change, not pushed yet
    await new Promise((r) => setTimeout(r, 5));
    await b.state('lamp', { power: 'dim' }); // newer change elsewhere
    await b.client.runCycle();
    const report = await a.client.runCycle();
    expect(report.conflicts).toBeGreaterThanOrEqual(1);
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'dim' });
    expect(a.localState('lamp')).toEqual({ power: 'dim' });
    expect(a.commands).toContainEqual({ deviceId: 'lamp', attributes: { power: 'dim' } });
    expect(a.pending()).toEqual([]);
    const recorded = a.db.prepare<[], { type: string; resolution: string }>('SELECT type, resolution FROM conflicts').all();
    expect(recorded).toContainEqual({ type: 'UPDATE_UPDATE', resolution: 'server_wins' });
    expect(recorded).toContainEqual({ type: 'UPDATE_UPDATE', resolution: 'server_arbitrates_on_push' });
  });

  it('conflict, client wins: the server takes our newer version', async () => {
    const a = gateway();
    const b = gateway();
    await a.state('lamp', { power: 'off' });
    await a.client.runCycle();
    await b.client.runCycle();
    await b.state('lamp', { power: 'dim' });
    await b.client.runCycle();
    await new Promise((r) => setTimeout(r, 5));
    await a.state('lamp', { power: 'on' }); // newer than b's
    const report = await a.client.runCycle();
    expect(report.pushed).toBe(1);
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'on' });
    const onServer = (await srv.server.entities(HOME)).find((e) => e.entity_id === 'lamp');
    expect(onServer?.origin_client).toBe(a.client.config.clientId);
    expect(a.localState('lamp')).toEqual({ power: 'on' });
    expect(a.pending()).toEqual([]);
    // b gets our version on its next pull
    await b.client.runCycle();
    expect(b.localState('lamp')).toEqual({ power: 'on' });
  });

  it('downlink without echo: a server-side change is applied, commanded, and not pushed back', async () => {
    const a = gateway();
    const b = gateway();
    await a.meta('lamp', 'Lamp', 'Hall');
    await a.state('lamp', { power: 'on', brightness: 10 });
    await a.client.runCycle();
    await b.client.runCycle();
    await b.state('lamp', { brightness: 80 });
    await b.client.runCycle();
    const report = await a.client.runCycle();
    expect(report).toMatchObject({ pulled: 1, pushed: 0 });
    expect(a.commands).toEqual([{ deviceId: 'lamp', attributes: { brightness: 80 } }]);
    expect(a.localState('lamp')).toEqual({ power: 'on', brightness: 80 });
    expect(a.pending()).toEqual([]);
    // the device confirms with its own report: identical, so nothing is written or queued
    expect((await a.state('lamp', { brightness: 80 })).written).toBe(0);
    const next = await a.client.runCycle();
    expect(next).toMatchObject({ pulled: 0, pushed: 0 });
  });
});

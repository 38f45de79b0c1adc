/**
 * Attribute-level state, history and the convergence digest end to end: the real sync client on a real SQLite store
 * against the real server (docs/protocol.md, extensions).
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HistoryResponseSchema } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, isoAt } from '../server/client.js';
import { makeGateway, serverState, type TestGateway } from './fixtures.js';

const HOME = 'home-1';
let n = 0;

function appWrite(id: string, state: Record<string, unknown>, at: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  n += 1;
  return { entity_type: 'entity_state', entity_id: id, operation: 'update', data: { device_id: id, state }, updated_at: isoAt(at), client_sync_id: `app-${n}`, ...extra };
}

forEachBackend((backend) => {
let srv: TestServer;
const gateways: TestGateway[] = [];


beforeEach(async () => {
  srv = await startTestServer({ hmac: { required: true } }, { backend });
});
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.close();
  await srv.close();
});

async function gateway(): Promise<TestGateway> {
  const gw = makeGateway({ url: srv.url, creds: await srv.addClient(HOME) });
  gateways.push(gw);
  return gw;
}

async function app(): Promise<TestClient> {
  const creds = await srv.addClient(HOME);
  const client = new TestClient(srv.url, creds, { sign: creds });
  await client.login();
  return client;
}

describe(`attribute-level state through the gateway [${backend.name}]`, () => {
  it('a device reporting brightness and an app switching power at the same moment: both survive on both sides', async () => {
    const gw = await gateway();
    const phone = await app();
    await gw.state('lamp', { power: 'on', brightness: 40, color_temp: 300 });
    await gw.client.runCycle();
    // The app switches power off; the lamp reports a new brightness before the gateway has pulled that. The app's
    // stamp is 1.5 s older than the lamp's, so a whole state pushed by the gateway would put power back on.
    await new Promise((r) => setTimeout(r, 2000));
    await phone.pushOk([appWrite('lamp', { power: 'off' }, Date.now() - 1500, { partial: true })]);
    await gw.state('lamp', { brightness: 80 });
    const pushed = await gw.client.pushPending(); // the push runs before any pull: it must not carry the old power
    expect(pushed).toMatchObject({ pushed: 1, applied: 1 });
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'off', brightness: 80, color_temp: 300 });
    await gw.client.runCycle();
    expect(gw.localState('lamp')).toEqual({ power: 'off', brightness: 80, color_temp: 300 });
    expect(gw.commands).toContainEqual({ deviceId: 'lamp', attributes: { power: 'off' } }); // the downlink, only what changed
  });

  it('an app edit pulled while a device change is pending is taken at once for the other attributes', async () => {
    const gw = await gateway();
    const phone = await app();
    await gw.state('lamp', { power: 'on', brightness: 40 });
    await gw.client.runCycle();
    await phone.pushOk([appWrite('lamp', { power: 'off' }, Date.now(), { partial: true })]);
    await gw.state('lamp', { brightness: 60 }); // pending when the pull meets the app's power
    await gw.client.runCycle();
    expect(gw.localState('lamp')).toEqual({ power: 'off', brightness: 60 });
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'off', brightness: 60 });
    expect(gw.pending()).toEqual([]);
  });

  it('the same attribute resolves as before, and the losing version is found in history', async () => {
    const gw = await gateway();
    const phone = await app();
    await gw.state('lamp', { power: 'on', brightness: 40 });
    await gw.client.runCycle();
    await gw.state('lamp', { brightness: 10 }); // older than the app's, pushed after it
    await phone.pushOk([appWrite('lamp', { brightness: 99 }, Date.now() + 2000, { partial: true })]);
    const report = await gw.client.pushPending();
    expect(report).toMatchObject({ pushed: 1, conflicts: 1 });
    expect(gw.localState('lamp')).toEqual({ power: 'on', brightness: 99 });
    const history = HistoryResponseSchema.parse((await phone.get('/api/v1/history?entity_id=lamp')).json);
    expect(history.entries[0]).toMatchObject({ why: 'lost', written_by: gw.client.config.clientId, decided_by: phone.creds.client_id, data: { state: { brightness: 10 } } });
  });

  it('a peer speaking only the seed (whole states, no caps, no digest) still syncs and converges with the gateway', async () => {
    const gw = await gateway();
    const seedCreds = await srv.addClient(HOME);
    const seed = new TestClient(srv.url, seedCreds, { sign: seedCreds });
    await seed.login();
    await gw.state('plug', { power: 'on', energy: 1.5 });
    await gw.client.runCycle();
    const base = await seed.pullAll(null);
    const plug = base.changes.find((c) => c.entity_id === 'plug');
    expect(plug?.data.state).toEqual({ power: 'on', energy: 1.5 });
    expect(base).not.toHaveProperty('digest');
    // The seed peer writes the whole state back, with power off; the device meanwhile reports energy.
    await seed.pushOk([appWrite('plug', { power: 'off', energy: 1.5 }, Date.now())]);
    await new Promise((r) => setTimeout(r, 1100)); // past the seed's 1 s tie window: the device's energy is later
    await gw.state('plug', { energy: 2.0 });
    await gw.client.runCycle();
    await gw.client.runCycle();
    const seedView = await seed.pullAll(base.serverTime, { include_deleted: true });
    const latest = seedView.changes.find((c) => c.entity_id === 'plug');
    expect(latest?.partial).toBeUndefined();
    expect(latest?.data.state).toEqual({ power: 'off', energy: 2.0 });
    expect(gw.localState('plug')).toEqual({ power: 'off', energy: 2.0 });
    expect(await serverState(srv.server, HOME, 'plug')).toEqual({ power: 'off', energy: 2.0 });
  });
});

describe(`convergence digest and self-repair [${backend.name}]`, () => {
  it('a hand-edited store (a row changed, a row deleted) is detected on the next sync and repaired bucket by bucket', async () => {
    const gw = await gateway();
    await gw.states(Array.from({ length: 64 }, (_, i) => [`sensor-${i}`, { value: i }] as const));
    await gw.client.runCycle();
    const quiet = await gw.client.runCycle();
    expect(quiet).toMatchObject({ pulled: 0, pushed: 0 });
    expect(gw.client.convergence.status).toMatchObject({ lastResult: 'match', mismatches: 0 });
    gw.db.prepare("UPDATE entities SET data = json_set(data, '$.state.value', 999) WHERE entity_type = 'entity_state' AND entity_id = 'sensor-7'").run();
    gw.db.prepare("DELETE FROM entities WHERE entity_type = 'entity_state' AND entity_id = 'sensor-42'").run();
    const report = await gw.client.runCycle();
    expect(report.fullResync).toBe(false);
    const status = gw.client.convergence.status;
    expect(status).toMatchObject({ mismatches: 1, repairs: 1 });
    expect(status.lastMismatch?.repaired).toBe(2);
    expect(status.lastMismatch?.buckets.length).toBeLessThanOrEqual(2);
    expect(status.lastMismatch?.resent).toBeLessThan(64); // only the differing buckets, not everything
    expect(gw.localState('sensor-7')).toEqual({ value: 7 });
    expect(gw.localState('sensor-42')).toEqual({ value: 42 });
    await gw.client.runCycle();
    expect(gw.client.convergence.status).toMatchObject({ lastResult: 'match', mismatches: 1 });
  });

  it('an entity the server no longer has, left behind by hand, is removed by the repair', async () => {
    const gw = await gateway();
    await gw.states([['a', { x: 1 }], ['b', { x: 2 }]]);
    await gw.client.runCycle();
    gw.db.prepare("INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted) VALUES ('entity_state', 'ghost', '{\"device_id\":\"ghost\",\"state\":{}}', 1, 'forged', 0)").run();
    await gw.client.runCycle();
    expect(gw.localState('ghost')).toBeUndefined();
    expect(gw.client.convergence.status).toMatchObject({ mismatches: 1 });
  });
});

describe(`the running daemon [${backend.name}]`, () => {
  it('a device and an app edit one lamp at once through MQTT and the server: both survive; a hand edit is repaired and shown in status', async () => {
    const { fastSync, startTestGateway, waitFor } = await import('../helpers/gateway.js');
    const { formatDaemonStatus, DaemonStatusView } = await import('../../src/commands/status-view.js');
    const Database = (await import('better-sqlite3')).default;
    const creds = await srv.addClient(HOME);
    const gw = await startTestGateway({
      serverUrl: srv.url,
      clientId: creds.client_id,
      clientSecret: creds.client_secret,
      tune: (c) => fastSync({ ...c, http: { ...c.http, host: '127.0.0.1', port: 0 } }),
    });
    try {
      const device = await gw.connect('lamp-dev');
      await device.publishAsync('devices/lamp/state', JSON.stringify({ power: 'on', brightness: 10 }), { qos: 1 });
      await waitFor(async () => (await serverState(srv.server, HOME, 'lamp'))?.brightness === 10, 15_000, 'the lamp on the server');
      const phone = await app();
      await phone.pushOk([appWrite('lamp', { power: 'off' }, Date.now(), { partial: true })]);
      await device.publishAsync('devices/lamp/state', JSON.stringify({ brightness: 80 }), { qos: 1 });
      await waitFor(async () => {
        const s = await serverState(srv.server, HOME, 'lamp');
        return s?.power === 'off' && s.brightness === 80;
      }, 15_000, 'both edits on the server');
      // A check made while the device's report was still pending is skipped (its bucket differs by design); the next
      // delta, once nothing is pending, compares everything. Another app write wakes the gateway's live wait for one.
      await waitFor(() => gw.daemon.store?.outbox.count() === 0, 15_000, 'nothing pending');
      await phone.pushOk([appWrite('other-0', { x: 0 }, Date.now())]);
      await waitFor(() => gw.daemon.status().convergence?.lastResult === 'match', 15_000, 'a matching digest').catch((err: unknown) => {
        throw new Error(`${String(err)}: ${JSON.stringify(gw.daemon.status().convergence)}`);
      });
      const file = new Database(join(gw.dataDir, 'gateway.db'));
      file.prepare("UPDATE entities SET data = json_set(data, '$.state.brightness', 1) WHERE entity_type = 'entity_state' AND entity_id = 'lamp'").run();
      file.close();
      await phone.pushOk([appWrite('other', { x: 1 }, Date.now())]); // wakes the gateway's live wait: a new digest
      await waitFor(() => (gw.daemon.status().convergence?.mismatches ?? 0) === 1, 15_000, 'the mismatch detected');
      // What `status` prints: the daemon's GET /status, as the CLI reads and formats it.
      const view = DaemonStatusView.parse(await (await fetch(`${gw.daemon.httpUrl ?? ''}/status`)).json());
      expect(formatDaemonStatus(view)).toMatch(/convergence: +digest \w+ .*1 mismatch\(es\) repaired; last .*: buckets \d+, 1 entities repaired/);
      await waitFor(() => {
        const row = gw.daemon.store?.entities.get('entity_state', 'lamp');
        return (row?.data.state as { brightness?: number } | undefined)?.brightness === 80;
      }, 15_000, 'the hand edit repaired');
    } finally {
      await gw.close();
    }
  });
});

describe(`a gateway speaking only the seed [${backend.name}]`, () => {
  it('syncs whole states next to a gateway with the extensions, and both converge on the server state', async () => {
    const modern = await gateway();
    const seedGw = makeGateway({ url: srv.url, creds: await srv.addClient(HOME), config: { seedOnly: true } });
    gateways.push(seedGw);
    await modern.state('lamp', { power: 'on', brightness: 40, color_temp: 300 });
    await modern.client.runCycle();
    await seedGw.client.runCycle();
    expect(seedGw.localState('lamp')).toEqual({ power: 'on', brightness: 40, color_temp: 300 });
    await new Promise((r) => setTimeout(r, 1100));
    await seedGw.state('lamp', { power: 'off' }); // a whole state goes up: the other attributes as it holds them
    await seedGw.client.runCycle();
    await new Promise((r) => setTimeout(r, 1100));
    await modern.state('lamp', { brightness: 90 });
    await modern.client.runCycle();
    await seedGw.client.runCycle();
    await modern.client.runCycle();
    const expected = { power: 'off', brightness: 90, color_temp: 300 };
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual(expected);
    expect(modern.localState('lamp')).toEqual(expected);
    expect(seedGw.localState('lamp')).toEqual(expected);
    expect(seedGw.client.convergence.status.checks).toBe(0); // no digest asked, none sent
    expect(modern.client.convergence.status).toMatchObject({ lastResult: 'match', mismatches: 0 });
  });
});
});

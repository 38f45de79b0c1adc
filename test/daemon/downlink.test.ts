/**
 * Downlink (docs/architecture.md §The life of a device state), end to end: a server-side change to a device's state is
 * published to devices/<id>/set on the real broker, is not sent back upstream, and the device's own confirming report
 * writes nothing new. Also a conflict each way through the whole daemon.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';

const HOME = 'home-downlink';

describe('downlink through the daemon', () => {
  let server: TestServer | undefined;
  let gateway: TestGateway | undefined;
  let app: AppClient | undefined;
  afterEach(async () => {
    await app?.close();
    await gateway?.close();
    await server?.close();
  });

  async function setup(): Promise<{ device: MqttClient; commands: Array<{ topic: string; body: Record<string, unknown> }> }> {
    server = await startTestServer();
    const gw = await server.addClient(HOME);
    app = await connectApp(server.url, await server.addClient(HOME));
    gateway = await startTestGateway({ serverUrl: server.url, clientId: gw.client_id, clientSecret: gw.client_secret });
    const device = await gateway.connect('lamp-1-device');
    const commands: Array<{ topic: string; body: Record<string, unknown> }> = [];
    device.on('message', (topic, payload) => commands.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
    await device.subscribeAsync('devices/+/set', { qos: 1 });
    await device.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Lamp', type: 'light', room: 'Kitchen' }), { qos: 1, retain: true });
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'ON', brightness: 100 }), { qos: 1 });
    const gwd = gateway.daemon;
    await waitFor(() => gwd.status().pending === 0 && gwd.status().lastSyncAt !== null, 10_000, 'first sync');
    return { device, commands };
  }

  it('publishes a server-side change to devices/<id>/set and does not echo it upstream', async () => {
    const { device, commands } = await setup();
    const gwd = gateway!.daemon;
    const result = await app!.setState('lamp-1', { state: 'OFF', brightness: 100 }, Date.now() + 2000);
    expect(result.applied[0]?.status).toBe('applied');
    await waitFor(() => commands.length > 0, 10_000, 'the command on devices/lamp-1/set');
    expect(commands[0]).toEqual({ topic: 'devices/lamp-1/set', body: { state: 'OFF' } });
    // Not echoed: nothing pending, and the server still holds the app's version.
    expect(gwd.status().pending).toBe(0);
    // The device obeys and reports; the report equals the stored state and writes nothing.
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'OFF', brightness: 100 }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(gwd.status().pending).toBe(0);
    expect(gwd.ingest!.metrics().duplicates).toBeGreaterThanOrEqual(1);
    const onServer = (await server!.server.entities(HOME)).find((e) => e.entity_type === 'entity_state' && e.entity_id === 'lamp-1');
    expect(onServer?.data.state).toEqual({ state: 'OFF', brightness: 100 });
    expect(onServer?.origin_client).not.toBe(gwd.config.server.clientId);
  });

  it('resolves a conflict each way: a newer local change wins, a newer server change wins', async () => {
    const { device, commands } = await setup();
    const gwd = gateway!.daemon;
    const stateOnServer = async () => (await server!.server.entities(HOME)).find((e) => e.entity_type === 'entity_state' && e.entity_id === 'lamp-1')?.data.state;

    // Client wins: an app edit stamped an hour in the past (a phone that was offline) loses to the device's report.
    await app!.setState('lamp-1', { state: 'OFF', brightness: 1 }, Date.now() - 3_600_000);
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'ON', brightness: 90 }), { qos: 1 });
    await gwd.syncNow();
    await gwd.syncNow();
    await waitFor(() => gwd.status().pending === 0, 10_000, 'outbox drained');
    expect(await stateOnServer()).toEqual({ state: 'ON', brightness: 90 });

    // Server wins: the app's edit is stamped an hour ahead, the device's later report loses on push; the gateway takes
    // the server's version and tells the device.
    await app!.setState('lamp-1', { state: 'ON', brightness: 7 }, Date.now() + 3_600_000);
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ brightness: 55 }), { qos: 1 });
    await gwd.syncNow();
    await gwd.syncNow();
    await waitFor(() => gwd.status().pending === 0, 10_000, 'outbox drained');
    expect(await stateOnServer()).toEqual({ state: 'ON', brightness: 7 });
    await waitFor(() => commands.some((c) => c.body.brightness === 7), 10_000, 'the server-wins command on devices/lamp-1/set');
    expect(gwd.status().conflicts).toBeGreaterThanOrEqual(1);
  });
});

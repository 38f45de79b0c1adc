/**
 * External broker mode (docs/security.md §External broker mode) against a real Mosquitto: device → Mosquitto → gateway
 * → store → server, and server change → gateway → Mosquitto → device; QoS 1 messages published while the gateway is
 * away arrive after it comes back (persistent session); a message whose commit fails is not acknowledged and comes
 * again; the gateway reconnects by itself when Mosquitto restarts.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { ExternalBrokerSchema } from '../../src/broker/config.js';
import type { PublishInterceptor } from '../../src/broker/index.js';
import { createExternalSource, reconnectDelays, type ExternalSource } from '../../src/broker/external-source.js';
import { silentLogger } from '../../src/log.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';
import { fastSync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';
import { queryStore } from '../helpers/store-file.js';

const HOME = 'home-external';
const USERS = { gateway: 'gw-secret', lamp: 'lamp-secret' };

let mosquitto: Mosquitto | undefined;
let server: TestServer | undefined;
let gateway: TestGateway | undefined;
let app: AppClient | undefined;
let source: ExternalSource | undefined;
const devices: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.endAsync(true).catch(() => undefined)));
  await source?.stop();
  source = undefined;
  await app?.close();
  await gateway?.close();
  await server?.close();
  await mosquitto?.close();
  app = undefined;
  gateway = undefined;
  server = undefined;
  mosquitto = undefined;
});

async function device(url: string): Promise<MqttClient> {
  const d = await mqtt.connectAsync(url, { username: 'lamp', password: USERS.lamp, clientId: 'lamp-1-device', reconnectPeriod: 0 });
  devices.push(d);
  return d;
}

function external(url: string) {
  return ExternalBrokerSchema.parse({ url, username: 'gateway', password: USERS.gateway, clientId: 'gw-test', reconnectMinMs: 50, reconnectMaxMs: 300 });
}

async function startGateway(dataDir?: string): Promise<TestGateway> {
  const m = mosquitto!;
  const gw = await server!.addClient(HOME);
  const g = await startTestGateway({
    serverUrl: server!.url,
    clientId: gw.client_id,
    clientSecret: gw.client_secret,
    ...(dataDir ? { dataDir } : {}),
    tune: (c) => fastSync({ ...c, mqtt: { ...c.mqtt, mode: 'external', external: external(m.url) } }),
  });
  await waitFor(() => g.daemon.status().brokerClients === 1, 10_000, 'the gateway connected to mosquitto');
  await new Promise((r) => setTimeout(r, 100)); // its SUBSCRIBE
  return g;
}

const stateOnServer = async (id: string): Promise<unknown> =>
  (await server!.server.entities(HOME)).find((e) => e.entity_type === 'entity_state' && e.entity_id === id)?.data.state;

describe('external broker mode (real Mosquitto)', () => {

  it('subscribes to the state topics Home Assistant discovery names, outside homeassistant/# (learnt at run time)', async () => {
    mosquitto = await startMosquitto(USERS);
    server = await startTestServer();
    gateway = await startGateway();
    const sensor = await device(mosquitto.url);
    // A device-side discovery config (HA "MQTT discovery" shape) whose state topic is not under homeassistant/.
    const config = { name: 'Porch temperature', stat_t: 'porch/sensor/temp', uniq_id: 'porch_temp_1', dev: { ids: ['porch-1'], name: 'Porch sensor' }, val_tpl: '{{ value_json.t }}' };
    await sensor.publishAsync('homeassistant/sensor/porch/temp/config', JSON.stringify(config), { qos: 1, retain: true });
    const daemon = gateway.daemon;
    const porchState = (): unknown => {
      const row = queryStore(daemon, (db) => db.prepare("SELECT data FROM entities WHERE entity_type = 'entity_state' AND entity_id LIKE 'ha:%porch%'").get()) as { data: string } | undefined;
      return row ? (JSON.parse(row.data) as { state: unknown }).state : undefined;
    };
    // The gateway learns the topic and subscribes to it on Mosquitto; a reading published afterwards reaches the store.
    await waitFor(async () => {
      await sensor.publishAsync('porch/sensor/temp', JSON.stringify({ t: 21.5 }), { qos: 1 });
      return porchState() !== undefined;
    }, 10_000, 'the porch reading in the store');
    expect(JSON.stringify(porchState())).toContain('21.5');
  });
  it('device → Mosquitto → gateway → store → server, and server change → gateway → Mosquitto → device', async () => {
    mosquitto = await startMosquitto(USERS);
    server = await startTestServer();
    app = await connectApp(server.url, await server.addClient(HOME));
    gateway = await startGateway();
    expect(gateway.daemon.status().mqtt).toEqual({ host: '127.0.0.1', port: mosquitto.port });

    const lamp = await device(mosquitto.url);
    const commands: Array<{ topic: string; body: unknown }> = [];
    lamp.on('message', (topic, payload) => commands.push({ topic, body: JSON.parse(payload.toString()) }));
    await lamp.subscribeAsync('devices/lamp-1/set', { qos: 1 });
    await lamp.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Lamp', type: 'light' }), { qos: 1, retain: true });
    await lamp.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'ON', brightness: 80 }), { qos: 1 });
    const gwd = gateway.daemon;
    await waitFor(async () => JSON.stringify(await stateOnServer('lamp-1')) === JSON.stringify({ state: 'ON', brightness: 80 }), 10_000, 'state on the server');

    await app.setState('lamp-1', { state: 'OFF', brightness: 80 }, Date.now() + 2000);
    await waitFor(() => commands.length > 0, 10_000, 'the command through mosquitto');
    expect(commands[0]).toEqual({ topic: 'devices/lamp-1/set', body: { state: 'OFF' } });
    expect(gwd.status().pending).toBe(0); // not echoed upstream
  });

  it('keeps QoS 1 messages published while the gateway is down (persistent session) and reconnects after a Mosquitto restart', async () => {
    mosquitto = await startMosquitto(USERS);
    server = await startTestServer();
    gateway = await startGateway();
    const dataDir = gateway.dataDir;
    const lamp = await device(mosquitto.url);
    await lamp.publishAsync('devices/lamp-2/state', JSON.stringify({ on: 1 }), { qos: 1 });
    await waitFor(async () => JSON.stringify(await stateOnServer('lamp-2')) === '{"on":1}', 10_000, 'first state on the server');

    // Gateway away: Mosquitto queues for its session.
    await gateway.daemon.stop();
    await lamp.publishAsync('devices/lamp-2/state', JSON.stringify({ on: 2 }), { qos: 1 });
    await gateway.close();
    gateway = await startGateway(dataDir);
    await waitFor(async () => JSON.stringify(await stateOnServer('lamp-2')) === '{"on":2}', 10_000, 'the queued state after the gateway came back');

    // Mosquitto restarts: the gateway reconnects by itself (backoff 50–300 ms here).
    await mosquitto.stop();
    await waitFor(() => gateway!.daemon.status().brokerClients === 0, 5000, 'the gateway noticed');
    await mosquitto.restart();
    await waitFor(() => gateway!.daemon.status().brokerClients === 1, 10_000, 'the gateway reconnected');
    await new Promise((r) => setTimeout(r, 100));
    const again = await device(mosquitto.url);
    await again.publishAsync('devices/lamp-2/state', JSON.stringify({ on: 3 }), { qos: 1 });
    await waitFor(async () => JSON.stringify(await stateOnServer('lamp-2')) === '{"on":3}', 10_000, 'state after the restart');
  });

  it('does not acknowledge a message whose commit failed: Mosquitto delivers it again', async () => {
    mosquitto = await startMosquitto(USERS);
    source = createExternalSource({ ...external(mosquitto.url), filters: ['devices/#'], logger: silentLogger() });
    const seen: Array<{ payload: string; dup: boolean }> = [];
    const interceptor: PublishInterceptor = (_client, packet, done) => {
      seen.push({ payload: packet.payload.toString(), dup: packet.dup });
      done(seen.length === 1 ? new Error('ingest: not acknowledged, disk full') : null);
    };
    source.addPublishInterceptor(interceptor);
    source.start();
    await source.ready();
    const lamp = await device(mosquitto.url);
    await lamp.publishAsync('devices/lamp-3/state', '{"on":true}', { qos: 1 });
    await waitFor(() => seen.length >= 2, 10_000, 'the redelivery');
    expect(seen[0]).toEqual({ payload: '{"on":true}', dup: false });
    expect(seen[1]).toEqual({ payload: '{"on":true}', dup: true });
    expect(source.status().connects).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toHaveLength(2); // acknowledged the second time
  });

  it('reports filters the broker refuses and keeps retrying with backoff on bad credentials', async () => {
    mosquitto = await startMosquitto(USERS);
    source = createExternalSource({ ...external(mosquitto.url), password: 'wrong', filters: ['devices/#'], logger: silentLogger() });
    source.start();
    await waitFor(() => source!.status().consecutiveFailures >= 2, 5000, 'two refused attempts');
    expect(source.status().connected).toBe(false);
    expect(source.status().lastError).toMatch(/Bad username or password|Not authorized/i);
    expect(reconnectDelays(50, 300)).toEqual([50, 100, 200, 300]);
    expect(reconnectDelays(1000, 30_000)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000]);
  });
});

/**
 * The gateway visible on MQTT and in Home Assistant (docs/devices.md §The gateway on MQTT): a real mqtt.js client
 * subscribed to the bridge topics of the real daemon — embedded broker in-process, and external mode against a real
 * Mosquitto with the daemon as a child process that is killed -9 (the last will).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { ExternalBrokerSchema } from '../../src/broker/config.js';
import { spawnDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { fastSync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startMosquitto, type Mosquitto } from '../external/mosquitto.js';
import { startOpsGateway, waitForItem, type OpsGateway } from './helpers.js';

const STATE = 'inbetweenies/bridge/state';
const INFO = 'inbetweenies/bridge/info';
const NODE = 'inbetweenies_gateway';

interface Seen {
  readonly topic: string;
  readonly text: string;
  readonly retain: boolean;
}

let gw: OpsGateway | undefined;
let tg: TestGateway | undefined;
let mosquitto: Mosquitto | undefined;
let proc: DaemonProcess | undefined;
const clients: MqttClient[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await proc?.kill9().catch(() => undefined);
  await gw?.close();
  await tg?.close();
  await mosquitto?.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  gw = tg = mosquitto = proc = undefined;
});

/** A subscriber that records everything it receives on `filters`. */
async function watch(url: string, filters: string[], options: mqtt.IClientOptions = {}): Promise<{ client: MqttClient; seen: Seen[] }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
  clients.push(client);
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, text: payload.toString(), retain: packet.retain }));
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, seen };
}

const lastOn = (seen: readonly Seen[], topic: string): Seen | undefined => seen.filter((s) => s.topic === topic).at(-1);
const info = (seen: readonly Seen[]): Record<string, unknown> => JSON.parse(lastOn(seen, INFO)?.text ?? '{}') as Record<string, unknown>;
const fast = { updateSeconds: 1 };

describe('the bridge on the embedded broker', () => {
  it('retained online, Home Assistant discovery of the gateway on one device, values that follow the store, offline on a clean stop', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, bridge: { ...c.bridge, homeassistant: { ...c.bridge.homeassistant, ...fast } } }) });
    const { seen } = await watch(gw.mqttUrl, ['inbetweenies/bridge/#', `homeassistant/+/${NODE}/+/config`]);
    await waitForItem(seen, (s) => s.topic === INFO, 5000, 'the retained info');
    expect(lastOn(seen, STATE)).toEqual({ topic: STATE, text: 'online', retain: true });
    expect(info(seen)).toMatchObject({ sync_mode: 'offline', pending_changes: 0, last_sync: null, devices: 0, conflicts: 0, version: expect.any(String) });

    await waitFor(() => seen.filter((s) => s.topic.endsWith('/config')).length >= 6, 5000, 'six discovery configs');
    const configs = new Map(seen.filter((s) => s.topic.endsWith('/config')).map((s) => [s.topic, JSON.parse(s.text) as Record<string, unknown>]));
    expect([...configs.keys()].sort()).toEqual(
      ['binary_sensor/NODE/connection', 'sensor/NODE/conflicts', 'sensor/NODE/devices', 'sensor/NODE/last_sync', 'sensor/NODE/pending_changes', 'sensor/NODE/sync_mode']
        .map((t) => `homeassistant/${t.replace('NODE', NODE)}/config`)
        .sort(),
    );
    const device = { identifiers: [NODE], name: 'Inbetweenies gateway', sw_version: expect.any(String) };
    for (const [topic, config] of configs) expect(config, topic).toMatchObject({ unique_id: expect.stringMatching(new RegExp(`^${NODE}_`)), device });
    expect(configs.get(`homeassistant/sensor/${NODE}/last_sync/config`)).toMatchObject({ device_class: 'timestamp', state_topic: INFO, availability_topic: STATE, value_template: '{{ value_json.last_sync }}' });
    expect(configs.get(`homeassistant/sensor/${NODE}/sync_mode/config`)).toMatchObject({ device_class: 'enum', options: ['live', 'polling', 'offline'] });
    expect(configs.get(`homeassistant/binary_sensor/${NODE}/connection/config`)).toMatchObject({ device_class: 'connectivity', state_topic: STATE, payload_on: 'online', payload_off: 'offline' });

    // The values follow the store: a device and its pending change appear within the update interval.
    const dev = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
    clients.push(dev);
    await dev.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Lamp', type: 'light' }), { qos: 1 });
    await dev.publishAsync('devices/lamp-1/state', JSON.stringify({ on: true }), { qos: 1 });
    await waitFor(() => info(seen).devices === 1 && Number(info(seen).pending_changes) >= 1, 5000, 'the info with the new device');
    expect(lastOn(seen, INFO)?.retain).toBe(false); // live delivery; the broker keeps it retained for new subscribers

    // The gateway's own configs, published on the embedded broker, never come back as a device.
    expect(gw.daemon.status().pending).toBeGreaterThan(0);
    expect(gw.daemon.store?.entities.deviceIds()).toEqual(['lamp-1']);

    await gw.daemon.stop();
    await waitForItem(seen, (s) => s.topic === STATE && s.text === 'offline', 5000, 'offline on a clean stop');
  });

  it('someone writing offline over the state while the gateway runs gets online back; HA birth gets the configs again', async () => {
    gw = await startOpsGateway();
    const { client, seen } = await watch(gw.mqttUrl, [STATE, `homeassistant/sensor/${NODE}/sync_mode/config`]);
    await waitForItem(seen, (s) => s.topic === STATE && s.text === 'online', 5000, 'online');
    await client.publishAsync(STATE, 'offline', { qos: 1, retain: true });
    await waitFor(() => lastOn(seen, STATE)?.text === 'online' && seen.filter((s) => s.topic === STATE).length >= 3, 5000, 'online again');
    const late = await watch(gw.mqttUrl, [STATE]);
    await waitForItem(late.seen, (s) => s.topic === STATE, 5000, 'the retained state');
    expect(lastOn(late.seen, STATE)).toEqual({ topic: STATE, text: 'online', retain: true });

    const before = seen.filter((s) => s.topic.endsWith('/config')).length;
    await client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor(() => seen.filter((s) => s.topic.endsWith('/config')).length > before, 5000, 'the configs again after the HA birth');
  });

  it('discovery switched off: the configs are cleared (empty retained), the state topic stays; bridge off: nothing', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, bridge: { ...c.bridge, homeassistant: { ...c.bridge.homeassistant, enabled: false } } }) });
    const { seen } = await watch(gw.mqttUrl, ['inbetweenies/#', 'homeassistant/#']);
    await waitForItem(seen, (s) => s.topic === STATE && s.text === 'online', 5000, 'online');
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.filter((s) => s.topic.startsWith('homeassistant/') && s.text !== '')).toEqual([]);
    await gw.close();
    gw = undefined;

    tg = await startTestGateway({ tune: (c) => fastSync({ ...c, bridge: { ...c.bridge, enabled: false } }) });
    const off = await watch(tg.mqttUrl, ['inbetweenies/#', 'homeassistant/#']);
    await new Promise((r) => setTimeout(r, 500));
    expect(off.seen).toEqual([]);
  });
});

describe('the bridge on an external broker (real Mosquitto)', () => {
  it('kill -9: the broker publishes the last will offline; a restart says online; our own discovery is not ingested', async () => {
    mosquitto = await startMosquitto({ gateway: 'gw-secret', watcher: 'watch-secret' });
    const dir = mkdtempSync(join(tmpdir(), 'ib-bridge-ext-'));
    dirs.push(dir);
    const config = join(dir, 'gateway.yaml');
    writeFileSync(config, `mqtt:\n  mode: external\n  external:\n    url: ${mosquitto.url}\n    username: gateway\n    clientId: gw-bridge-test\n    reconnectMinMs: 50\n    reconnectMaxMs: 300\n`);
    const env = { INBETWEENIES_MQTT_PASSWORD: 'gw-secret' };
    const { seen } = await watch(mosquitto.url, [STATE, INFO], { username: 'watcher', password: 'watch-secret' });
    proc = await spawnDaemon({ dataDir: join(dir, 'gw'), config, env });
    await waitForItem(seen, (s) => s.topic === STATE && s.text === 'online', 10_000, 'online from the daemon');
    await waitForItem(seen, (s) => s.topic === INFO, 10_000, 'the info');

    await proc.kill9();
    proc = undefined;
    await waitForItem(seen, (s) => s.topic === STATE && s.text === 'offline', 10_000, 'the last will');
    const late = await watch(mosquitto.url, [STATE], { username: 'watcher', password: 'watch-secret' });
    await waitForItem(late.seen, (s) => s.topic === STATE, 5000, 'the retained state');
    expect(lastOn(late.seen, STATE)).toEqual({ topic: STATE, text: 'offline', retain: true });

    // In-process now, on the same broker: its own discovery configs come back from Mosquitto (homeassistant/#).
    tg = await startTestGateway({
      tune: (c) =>
        fastSync({ ...c, mqtt: { ...c.mqtt, mode: 'external', external: ExternalBrokerSchema.parse({ url: mosquitto?.url, username: 'gateway', password: 'gw-secret', clientId: 'gw-bridge-test', reconnectMinMs: 50, reconnectMaxMs: 300 }) } }),
    });
    await waitFor(() => lastOn(seen, STATE)?.text === 'online', 10_000, 'online after the restart');
    const ingest = tg.daemon.ingest;
    // The broker hands its retained messages to the gateway's subscriptions (homeassistant/#, the state topic):
    // our six configs among them. The Home Assistant adapter leaves them alone (no adapter takes them).
    await waitFor(() => (ingest?.metrics().messagesIn ?? 0) >= 7, 10_000, 'our discovery configs handed back by the broker');
    await ingest?.flush();
    expect(ingest?.metrics().messagesByAdapter.homeassistant).toBe(0);
    expect(tg.daemon.store?.entities.deviceIds()).toEqual([]);
  });
});

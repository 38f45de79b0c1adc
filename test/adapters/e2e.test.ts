/**
 * Per adapter: real-shaped payloads published through the REAL broker reach the store and the
 * server, and a server-side change comes back out as the right command on the right topic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startTestGateway, fastSync, waitFor, type TestGateway } from '../helpers/gateway.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { Z2M_BRIDGE_DEVICES, Z2M_MOTION_AND_LIGHT, Z2M_PLUG_STATE } from '../fixtures/adapters/zigbee2mqtt.js';
import { TASMOTA_DISCOVERY, TASMOTA_DISCOVERY_MAC, TASMOTA_SENSOR, TASMOTA_STATE, TASMOTA_TOPIC } from '../fixtures/adapters/tasmota.js';
import { SHELLY_DEVICE_INFO, SHELLY_NOTIFY_STATUS, SHELLY_PREFIX, SHELLY_SWITCH_STATUS, shellyRpcResponse } from '../fixtures/adapters/shelly.js';
import { HA_BEDROOM_H_CONFIG, HA_BEDROOM_H_TOPIC, HA_BEDROOM_STATE, HA_BEDROOM_T_CONFIG, HA_BEDROOM_T_TOPIC, HA_SWITCH_CONFIG, HA_SWITCH_TOPIC } from '../fixtures/adapters/homeassistant.js';
import { GENERIC_MAPPINGS } from '../fixtures/adapters/generic.js';
import { queryStore } from '../helpers/store-file.js';

const HOME = 'home-adapters';

describe('adapters end to end (real broker, real server)', () => {
  let server: TestServer;
  let gateway: TestGateway;
  let app: AppClient;
  let device: MqttClient;
  const seen: Array<{ topic: string; payload: string }> = [];
  /** The gateway's log lines (info and up), parsed. */
  const logs: Array<Record<string, unknown>> = [];
  const capture = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });

  beforeAll(async () => {
    server = await startTestServer();
    const gw = await server.addClient(HOME);
    app = await connectApp(server.url, await server.addClient(HOME));
    gateway = await startTestGateway({
      serverUrl: server.url,
      clientId: gw.client_id,
      clientSecret: gw.client_secret,
      logger: createLogger({ level: 'info', destination: capture }),
      tune: (c) => {
        const f = fastSync(c);
        const shelly = { ...f.ingest.adapters.shelly, rooms: { [SHELLY_PREFIX]: 'Hall' } };
        return { ...f, ingest: { ...f.ingest, adapters: { ...f.ingest.adapters, shelly, generic: { ...f.ingest.adapters.generic, enabled: true, mappings: GENERIC_MAPPINGS.map((m) => ({ payload: 'auto' as const, idPrefix: 'generic:', valueAttribute: 'value', ...m })) } } } };
      },
    });
    device = await gateway.connect('devices-under-test');
    device.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    await device.subscribeAsync(['zigbee2mqtt/+/set', 'zigbee2mqtt/+/+/set', 'cmnd/#', `${SHELLY_PREFIX}/rpc`, 'garden/#', 'home/#'], { qos: 1 });
  }, 20_000);

  afterAll(async () => {
    await app?.close();
    await gateway?.close();
    await server?.close();
  });

  const pub = (topic: string, body: unknown, retain = false) =>
    device.publishAsync(topic, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1, retain });

  function stored(type: 'device' | 'entity_state' | 'room', id: string): Record<string, unknown> | undefined {
    const row = queryStore(gateway.daemon, (db) => db.prepare('SELECT data FROM entities WHERE entity_type = ? AND entity_id = ?').get(type, id)) as { data: string } | undefined;
    return row ? (JSON.parse(row.data) as Record<string, unknown>) : undefined;
  }
  const onServer = async (type: string, id: string) => (await server.server.entities(HOME)).find((e) => e.entity_type === type && e.entity_id === id)?.data;

  async function roundTrip(deviceId: string, expectState: Record<string, unknown>, change: Record<string, unknown>, command: { topic: string; check: (payload: string) => boolean }) {
    await waitFor(async () => JSON.stringify(((await onServer('entity_state', deviceId)) as { state?: unknown } | undefined)?.state) === JSON.stringify(expectState), 10_000, `${deviceId} on the server`);
    expect((stored('entity_state', deviceId) as { state: unknown }).state).toEqual(expectState);
    const result = await app.setState(deviceId, { ...expectState, ...change }, Date.now() + 2000);
    expect(result.applied[0]?.status).toBe('applied');
    await waitFor(() => seen.some((m) => m.topic === command.topic && command.check(m.payload)), 10_000, `the command on ${command.topic}`);
  }

  it('zigbee2mqtt: bridge/devices meta, state, availability; command to <name>/set', async () => {
    await pub('zigbee2mqtt/bridge/devices', Z2M_BRIDGE_DEVICES, true);
    await pub('zigbee2mqtt/my_plug', Z2M_PLUG_STATE);
    await pub('zigbee2mqtt/my_plug/availability', { state: 'online' }, true);
    await roundTrip('z2m:my_plug', { state: 'ON', power: 12.5, available: true }, { state: 'OFF' }, {
      topic: 'zigbee2mqtt/my_plug/set',
      check: (p) => JSON.stringify(JSON.parse(p)) === '{"state":"OFF"}',
    });
    expect(stored('device', 'z2m:my_plug')).toMatchObject({ name: 'my_plug', device_type: 'switch', manufacturer: 'Xiaomi', model: 'ZNCZ02LM' });
    await waitFor(async () => (await onServer('device', 'z2m:my_plug')) !== undefined, 10_000, 'z2m device on the server');
  });

  it('tasmota: discovery meta, STATE, SENSOR, LWT; command to cmnd/<topic>/POWER', async () => {
    await pub(`tasmota/discovery/${TASMOTA_DISCOVERY_MAC}/config`, TASMOTA_DISCOVERY, true);
    await pub(`tele/${TASMOTA_TOPIC}/LWT`, 'Online', true);
    await pub(`tele/${TASMOTA_TOPIC}/STATE`, TASMOTA_STATE);
    await pub(`tele/${TASMOTA_TOPIC}/SENSOR`, TASMOTA_SENSOR);
    const id = `tasmota:${TASMOTA_TOPIC}`;
    await roundTrip(id, { available: true, POWER: 'ON', ENERGY: TASMOTA_SENSOR.ENERGY, AM2301: TASMOTA_SENSOR.AM2301 }, { POWER: 'OFF' }, {
      topic: `cmnd/${TASMOTA_TOPIC}/POWER`,
      check: (p) => p === 'OFF',
    });
    expect(stored('device', id)).toMatchObject({ name: 'Kitchen plug', model: 'Sonoff Pow R2' });
  });

  it('shelly gen2: status, NotifyStatus delta, online; command as Switch.Set on <prefix>/rpc', async () => {
    await pub(`${SHELLY_PREFIX}/online`, 'true', true);
    await pub(`${SHELLY_PREFIX}/status/switch:0`, SHELLY_SWITCH_STATUS);
    await pub(`${SHELLY_PREFIX}/events/rpc`, SHELLY_NOTIFY_STATUS);
    const id = `shelly:${SHELLY_PREFIX}`;
    await roundTrip(
      id,
      {
        available: true,
        'switch:0.output': true,
        'switch:0.apower': 0,
        'switch:0.voltage': 233.6,
        'switch:0.current': 0,
        'switch:0.aenergy': { total: SHELLY_SWITCH_STATUS.aenergy.total },
        'switch:0.temperature': SHELLY_SWITCH_STATUS.temperature,
      },
      { 'switch:0.output': false },
      {
        topic: `${SHELLY_PREFIX}/rpc`,
        check: (p) => {
          const f = JSON.parse(p) as { method?: string; params?: unknown; src?: string };
          return f.method === 'Switch.Set' && JSON.stringify(f.params) === '{"id":0,"on":false}' && f.src === 'inbetweenies';
        },
      },
    );
  });

  it('shelly gen2: asked who it is (Shelly.GetDeviceInfo), its answer names the device, typed and in its room', async () => {
    const request = seen.find((m) => m.topic === `${SHELLY_PREFIX}/rpc` && m.payload.includes('Shelly.GetDeviceInfo'));
    expect(request, 'the GetDeviceInfo request the device received').toBeDefined();
    const frame = JSON.parse(request?.payload ?? '{}') as { id: number; src: string };
    expect(frame.src).toBe('inbetweenies');
    await pub(`${frame.src}/rpc`, shellyRpcResponse(frame.id, SHELLY_DEVICE_INFO));
    const id = `shelly:${SHELLY_PREFIX}`;
    await waitFor(async () => ((await onServer('device', id)) as { name?: string } | undefined)?.name === 'Hall light', 10_000, 'the named Shelly on the server');
    expect(stored('device', id)).toMatchObject({ name: 'Hall light', device_type: 'switch', manufacturer: 'Shelly', model: 'SNSW-001P16EU', room_id: 'room-hall' });
    expect(stored('room', 'room-hall')).toMatchObject({ name: 'Hall' });
    // Asked once since the start, however many messages the device sent; the first one logged once, with its topic.
    expect(seen.filter((m) => m.topic === `${SHELLY_PREFIX}/rpc` && m.payload.includes('Shelly.GetDeviceInfo'))).toHaveLength(1);
    expect(logs.filter((l) => l.msg === `device heard: ${id}`)).toEqual([expect.objectContaining({ level: 30, adapter: 'shelly', topic: `${SHELLY_PREFIX}/online` })]);
  });

  it('shelly: a status that differs only in the per-minute energy buckets writes nothing', async () => {
    const metrics = () => gateway.daemon.ingest?.metrics();
    await pub(`${SHELLY_PREFIX}/status/switch:0`, SHELLY_SWITCH_STATUS);
    gateway.daemon.ingest?.flush();
    const written = metrics()?.statesWritten ?? -1;
    const duplicates = metrics()?.duplicates ?? -1;
    await pub(`${SHELLY_PREFIX}/status/switch:0`, { ...SHELLY_SWITCH_STATUS, aenergy: { total: SHELLY_SWITCH_STATUS.aenergy.total, by_minute: [7, 1, 0], minute_ts: 1654511260 } });
    gateway.daemon.ingest?.flush();
    expect(metrics()?.statesWritten).toBe(written);
    expect(metrics()?.duplicates).toBe(duplicates + 1);
  });

  it('zigbee2mqtt: a server-side change of a motion sensor is never sent to its /set; a lamp\'s is; each command logged', async () => {
    await pub('zigbee2mqtt/bridge/devices', [...Z2M_BRIDGE_DEVICES, ...Z2M_MOTION_AND_LIGHT], true);
    await pub('zigbee2mqtt/hall/motion', { occupancy: true, illuminance: 12, battery: 90 });
    await pub('zigbee2mqtt/hall/lamp', { state: 'ON', brightness: 200 });
    await waitFor(async () => (await onServer('entity_state', 'z2m:hall/lamp')) !== undefined && (await onServer('entity_state', 'z2m:hall/motion')) !== undefined, 10_000, 'motion and lamp on the server');
    expect((await app.setState('z2m:hall/motion', { occupancy: false, illuminance: 12, battery: 90 }, Date.now() + 2000)).applied[0]?.status).toBe('applied');
    expect((await app.setState('z2m:hall/lamp', { state: 'OFF', brightness: 200 }, Date.now() + 2000)).applied[0]?.status).toBe('applied');
    await waitFor(() => seen.some((m) => m.topic === 'zigbee2mqtt/hall/lamp/set'), 10_000, 'the lamp command');
    expect(seen.find((m) => m.topic === 'zigbee2mqtt/hall/lamp/set')?.payload).toBe('{"state":"OFF"}');
    expect(seen.filter((m) => m.topic === 'zigbee2mqtt/hall/motion/set')).toEqual([]);
    expect(logs).toContainEqual(expect.objectContaining({ level: 30, msg: 'command sent on zigbee2mqtt/hall/lamp/set', deviceId: 'z2m:hall/lamp', payload: '{"state":"OFF"}' }));
  });

  it('home assistant: discovery configs, templated shared state, a learnt state topic; command to command_topic', async () => {
    await pub(HA_BEDROOM_T_TOPIC, HA_BEDROOM_T_CONFIG, true);
    await pub(HA_BEDROOM_H_TOPIC, HA_BEDROOM_H_CONFIG, true);
    await pub(HA_SWITCH_TOPIC, HA_SWITCH_CONFIG, true);
    await pub('homeassistant/sensor/sensorBedroom/state', HA_BEDROOM_STATE);
    await pub('garden/irrigation/status', 'online', true);
    await pub('garden/irrigation/state', 'OFF');
    await waitFor(async () => (await onServer('entity_state', 'ha:bedroom01ae')) !== undefined, 10_000, 'bedroom on the server');
    expect(stored('entity_state', 'ha:bedroom01ae')?.state).toEqual({ sensorBedroomT: 23.2, sensorBedroomH: 43.7 });
    expect(stored('device', 'ha:bedroom01ae')).toMatchObject({ name: 'Bedroom', manufacturer: 'Example sensors Ltd.', model: 'Example Sensor' });
    await roundTrip('ha:irrigation-ctl-1', { available: true, irrigation: false }, { irrigation: true }, { topic: 'garden/irrigation/set', check: (p) => p === 'ON' });
  });

  it('generic: plain values under named wildcards; command to the configured topic', async () => {
    await pub('home/hall_lamp/power', 'ON');
    await pub('home/hall_lamp/brightness', '42');
    await roundTrip('generic:hall_lamp', { power: 'ON', brightness: 42 }, { brightness: 10 }, { topic: 'home/hall_lamp/brightness/set', check: (p) => p === '10' });
  });

  it('counts bad payloads on every adapter and stores nothing from them', async () => {
    const before = JSON.stringify(queryStore(gateway.daemon, (db) => db.prepare('SELECT entity_type, entity_id, data FROM entities ORDER BY 1, 2').all()));
    const dropped = () => Object.values(gateway.daemon.ingest?.metrics().dropped ?? {}).reduce((a, b) => a + b, 0);
    const start = dropped();
    const bad: Array<[string, string | Buffer]> = [
      ['zigbee2mqtt/my_plug', '{"state":'],
      ['zigbee2mqtt/my_plug/availability', 'sometimes'],
      [`tele/${TASMOTA_TOPIC}/STATE`, Buffer.from([0xff, 0x00, 0xfe])],
      [`stat/${TASMOTA_TOPIC}/POWER`, 'BLUE'],
      [`${SHELLY_PREFIX}/status/switch:0`, '[1,2]'],
      [`${SHELLY_PREFIX}/status/switch:x`, '{}'],
      ['homeassistant/sensor/sensorBedroom/state', '{"neither":1}'],
      ['homeassistant/sensor/broken/config', 'nope'],
      ['sensors/weather', '{"x":'],
    ];
    for (const [topic, payload] of bad) await device.publishAsync(topic, payload, { qos: 1 });
    expect(dropped() - start).toBe(bad.length);
    // Over mqtt.maxPayloadBytes: the broker itself refuses it before ingest; nothing stored either.
    await device.publishAsync('zigbee2mqtt/huge', `{"a":"${'x'.repeat(300 * 1024)}"}`, { qos: 1 });
    gateway.daemon.ingest?.flush();
    expect(JSON.stringify(queryStore(gateway.daemon, (db) => db.prepare('SELECT entity_type, entity_id, data FROM entities ORDER BY 1, 2').all()))).toBe(before);
    expect(device.connected).toBe(true);
  });
});

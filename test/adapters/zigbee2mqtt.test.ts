import { describe, expect, it } from 'vitest';
import { createZigbee2MqttAdapter, z2mSettable } from '../../src/ingest/adapters/zigbee2mqtt.js';
import { Z2M_AVAILABILITY_JSON, Z2M_BRIDGE_DEVICES, Z2M_BRIDGE_LOGGING, Z2M_BRIDGE_STATE, Z2M_LEAK_STATE, Z2M_MOTION_AND_LIGHT, Z2M_PLUG_STATE } from '../fixtures/adapters/zigbee2mqtt.js';
import { commandTopics, json, rejection, text, updates } from './parse-helpers.js';

describe('zigbee2mqtt adapter', () => {
  const z2m = createZigbee2MqttAdapter();

  it('ingests device state, dropping link quality and last_seen, with friendly names containing /', () => {
    expect(updates(z2m.parse('zigbee2mqtt/my_plug', json(Z2M_PLUG_STATE)))).toEqual([{ kind: 'state', deviceId: 'z2m:my_plug', attributes: { state: 'ON', power: 12.5 } }]);
    expect(updates(z2m.parse('zigbee2mqtt/living_room/leak', json(Z2M_LEAK_STATE)))).toEqual([
      { kind: 'state', deviceId: 'z2m:living_room/leak', attributes: { battery: 97, voltage: 3005, water_leak: false } },
    ]);
  });

  it('turns bridge/devices into meta (model, vendor, type), skipping the coordinator', () => {
    expect(updates(z2m.parse('zigbee2mqtt/bridge/devices', json(Z2M_BRIDGE_DEVICES)))).toEqual([
      { kind: 'meta', deviceId: 'z2m:my_plug', name: 'my_plug', type: 'switch', room: null, manufacturer: 'Xiaomi', model: 'ZNCZ02LM' },
      { kind: 'meta', deviceId: 'z2m:living_room/leak', name: 'living_room/leak', type: 'water_leak', room: null, manufacturer: 'Aqara', model: 'SJCGQ11LM' },
    ]);
  });

  it('reads both availability forms', () => {
    expect(updates(z2m.parse('zigbee2mqtt/living_room/leak/availability', text('offline')))).toEqual([{ kind: 'availability', deviceId: 'z2m:living_room/leak', available: false }]);
    expect(updates(z2m.parse('zigbee2mqtt/my_plug/availability', json(Z2M_AVAILABILITY_JSON)))).toEqual([{ kind: 'availability', deviceId: 'z2m:my_plug', available: true }]);
    expect(rejection(z2m.parse('zigbee2mqtt/my_plug/availability', text('maybe')))).toBe('invalid_availability');
  });

  it('ignores other bridge topics and command topics', () => {
    expect(z2m.parse('zigbee2mqtt/bridge/state', json(Z2M_BRIDGE_STATE))).toBeUndefined();
    expect(z2m.parse('zigbee2mqtt/bridge/logging', json(Z2M_BRIDGE_LOGGING))).toBeUndefined();
    expect(z2m.parse('zigbee2mqtt/my_plug/set', json({ state: 'OFF' }))).toBeUndefined();
    expect(z2m.parse('zigbee2mqtt/my_plug/set/state', text('OFF'))).toBeUndefined();
    expect(z2m.parse('zigbee2mqtt/my_plug/get', json({ state: '' }))).toBeUndefined();
  });

  it('rejects bad payloads with stable reasons', () => {
    expect(rejection(z2m.parse('zigbee2mqtt/my_plug', text('{"state":')))).toBe('invalid_json');
    expect(rejection(z2m.parse('zigbee2mqtt/my_plug', json([1, 2])))).toBe('not_an_object');
    expect(rejection(z2m.parse('zigbee2mqtt/my_plug', Buffer.from([0xff, 0xfe, 0x00])))).toBe('binary_payload');
    expect(rejection(z2m.parse('zigbee2mqtt/bridge/devices', json({ not: 'a list' })))).toBe('invalid_schema');
    expect(rejection(createZigbee2MqttAdapter({ maxPayloadBytes: 16 }).parse('zigbee2mqtt/x', json(Z2M_PLUG_STATE)))).toBe('payload_too_large');
    expect(rejection(z2m.parse('zigbee2mqtt/a//b', json({})))).toBe('invalid_device_id');
  });

  it('sends commands to <base>/<friendly_name>/set without `available`', () => {
    expect(commandTopics(z2m, 'z2m:living_room/lamp', { state: 'OFF', brightness: 10, available: true })).toEqual([
      ['zigbee2mqtt/living_room/lamp/set', '{"state":"OFF","brightness":10}'],
    ]);
    expect(commandTopics(z2m, 'z2m:x', { available: false })).toEqual([]);
    expect(z2m.ownsDevice?.('z2m:x')).toBe(true);
    expect(z2m.ownsDevice?.('lamp-1')).toBe(false);
  });

  it('checks its options', () => {
    expect(() => createZigbee2MqttAdapter({ baseTopic: 'a/b' })).toThrow(/baseTopic must be one topic level/);
  });

  it('never sends a read-only attribute: only exposes with the settable access bit, nested features included', () => {
    const a = createZigbee2MqttAdapter({ rooms: { 'hall/motion': 'Hall' } });
    const metas = updates(a.parse('zigbee2mqtt/bridge/devices', json([...Z2M_BRIDGE_DEVICES, ...Z2M_MOTION_AND_LIGHT])));
    expect(metas.find((m) => m.deviceId === 'z2m:hall/motion')).toMatchObject({ type: 'motion', room: 'Hall' });
    // The motion sensor of the first hour: {"occupancy":false} was published to its /set. Now nothing is.
    expect(commandTopics(a, 'z2m:hall/motion', { occupancy: false, illuminance: 3, battery: 90 })).toEqual([]);
    expect(commandTopics(a, 'z2m:hall/motion', { occupancy: false, occupancy_timeout: 60 })).toEqual([['zigbee2mqtt/hall/motion/set', '{"occupancy_timeout":60}']]);
    expect(commandTopics(a, 'z2m:hall/lamp', { state: 'OFF', brightness: 10, linkquality: 80 })).toEqual([['zigbee2mqtt/hall/lamp/set', '{"state":"OFF","brightness":10}']]);
    expect(commandTopics(a, 'z2m:my_plug', { state: 'OFF', power: 0 })).toEqual([['zigbee2mqtt/my_plug/set', '{"state":"OFF"}']]);
    expect(commandTopics(a, 'z2m:living_room/leak', { water_leak: true })).toEqual([]);
    expect([...z2mSettable(Z2M_MOTION_AND_LIGHT[1]?.definition.exposes ?? [])].sort()).toEqual(['brightness', 'state']);
  });

  it('before bridge/devices is known, sensor readings are still never sent', () => {
    const a = createZigbee2MqttAdapter();
    expect(commandTopics(a, 'z2m:hall/motion', { occupancy: false, battery: 50, state: 'ON' })).toEqual([['zigbee2mqtt/hall/motion/set', '{"state":"ON"}']]);
  });

  it('ignore lists take nested paths', () => {
    const a = createZigbee2MqttAdapter({ ignoreAttributes: ['linkquality', 'update.installed_version'] });
    const state = { state: 'ON', linkquality: 40, update: { state: 'idle', installed_version: 1, latest_version: 1 } };
    expect(updates(a.parse('zigbee2mqtt/lamp', json(state)))).toEqual([{ kind: 'state', deviceId: 'z2m:lamp', attributes: { state: 'ON', update: { state: 'idle', latest_version: 1 } } }]);
  });
});

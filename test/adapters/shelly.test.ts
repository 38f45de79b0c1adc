import { describe, expect, it } from 'vitest';
import type { ParseResult } from '../../src/ingest/adapter.js';
import { createShellyAdapter } from '../../src/ingest/adapters/shelly.js';
import { shellyType } from '../../src/ingest/adapters/shelly-info.js';
import {
  SHELLY_DEVICE_INFO,
  SHELLY_GEN1_ANNOUNCE,
  SHELLY_GEN1_ID,
  SHELLY_NOTIFY_EVENT,
  SHELLY_NOTIFY_FULL_STATUS,
  SHELLY_NOTIFY_STATUS,
  SHELLY_PREFIX,
  SHELLY_SWITCH_STATUS,
  shellyRpcResponse,
} from '../fixtures/adapters/shelly.js';
import { commandTopics, json, rejection, text, updates } from './parse-helpers.js';

describe('shelly adapter', () => {
  const shelly = createShellyAdapter();
  const id = `shelly:${SHELLY_PREFIX}`;

  it('flattens a component status one level', () => {
    expect(updates(shelly.parse(`${SHELLY_PREFIX}/status/switch:0`, json(SHELLY_SWITCH_STATUS)))).toEqual([
      {
        kind: 'state',
        deviceId: id,
        attributes: {
          'switch:0.output': false,
          'switch:0.apower': 0,
          'switch:0.voltage': 233.6,
          'switch:0.current': 0,
          // aenergy.by_minute and aenergy.minute_ts change every minute: ignored by default.
          'switch:0.aenergy': { total: 0 },
          'switch:0.temperature': SHELLY_SWITCH_STATUS.temperature,
        },
      },
    ]);
  });

  it('merges NotifyStatus deltas and NotifyFullStatus components; ignores NotifyEvent', () => {
    expect(updates(shelly.parse(`${SHELLY_PREFIX}/events/rpc`, json(SHELLY_NOTIFY_STATUS)))).toEqual([{ kind: 'state', deviceId: id, attributes: { 'switch:0.output': true } }]);
    const full = updates(shelly.parse(`${SHELLY_PREFIX}/events/rpc`, json(SHELLY_NOTIFY_FULL_STATUS)));
    expect(full).toEqual([
      { kind: 'state', deviceId: id, attributes: { 'input:0.state': false, 'switch:0.output': true, 'switch:0.apower': 41.2, 'switch:0.voltage': 233.1, 'switch:0.current': 0.21 } },
    ]);
    expect(shelly.parse(`${SHELLY_PREFIX}/events/rpc`, json(SHELLY_NOTIFY_EVENT))).toBeUndefined();
  });

  it('reads online true/false and rejects bad input', () => {
    expect(updates(shelly.parse(`${SHELLY_PREFIX}/online`, text('false')))).toEqual([{ kind: 'availability', deviceId: id, available: false }]);
    expect(rejection(shelly.parse(`${SHELLY_PREFIX}/online`, text('later')))).toBe('invalid_availability');
    expect(rejection(shelly.parse(`${SHELLY_PREFIX}/status/switch:zero`, json({})))).toBe('invalid_topic');
    expect(rejection(shelly.parse(`${SHELLY_PREFIX}/status/switch:0`, text('{')))).toBe('invalid_json');
    expect(shelly.parse(`${SHELLY_PREFIX}/status/sys`, json({}))).toBeUndefined();
  });

  it('sends JSON-RPC Switch.Set / Light.Set / Cover.GoToPosition on <prefix>/rpc', () => {
    const sent = commandTopics(shelly, id, { 'switch:0.output': true, 'switch:0.apower': 5, 'light:1.brightness': 30, 'cover:0.target_pos': 55, available: true });
    expect(sent.map(([topic]) => topic)).toEqual([`${SHELLY_PREFIX}/rpc`, `${SHELLY_PREFIX}/rpc`, `${SHELLY_PREFIX}/rpc`]);
    const frames = sent.map(([, body]) => JSON.parse(body) as Record<string, unknown>);
    expect(frames.map((f) => [f.src, f.method, f.params])).toEqual([
      ['inbetweenies', 'Switch.Set', { id: 0, on: true }],
      ['inbetweenies', 'Light.Set', { id: 1, brightness: 30 }],
      ['inbetweenies', 'Cover.GoToPosition', { id: 0, pos: 55 }],
    ]);
    expect(new Set(frames.map((f) => f.id)).size).toBe(3);
  });

  it('speaks Gen1 relays', () => {
    const gen1 = `shelly:shellies/${SHELLY_GEN1_ID}`;
    expect(updates(shelly.parse(`shellies/${SHELLY_GEN1_ID}/relay/0`, text('on')))).toEqual([{ kind: 'state', deviceId: gen1, attributes: { 'switch:0.output': true } }]);
    expect(updates(shelly.parse(`shellies/${SHELLY_GEN1_ID}/relay/0/power`, text('12.5')))).toEqual([{ kind: 'state', deviceId: gen1, attributes: { 'switch:0.apower': 12.5 } }]);
    expect(updates(shelly.parse(`shellies/${SHELLY_GEN1_ID}/online`, text('true')))).toEqual([{ kind: 'availability', deviceId: gen1, available: true }]);
    expect(shelly.parse(`shellies/${SHELLY_GEN1_ID}/relay/0/command`, text('off'))).toBeUndefined();
    expect(commandTopics(shelly, gen1, { 'switch:0.output': false })).toEqual([[`shellies/${SHELLY_GEN1_ID}/relay/0/command`, 'off']]);
  });

  it('drops the per-minute energy buckets: a status that differs only there gives the same attributes', () => {
    const a = createShellyAdapter();
    const later = { ...SHELLY_SWITCH_STATUS, aenergy: { total: 0, by_minute: [5, 0, 0], minute_ts: 1654511200 } };
    const first = updates(a.parse(`${SHELLY_PREFIX}/status/switch:0`, json(SHELLY_SWITCH_STATUS)));
    expect(updates(a.parse(`${SHELLY_PREFIX}/status/switch:0`, json(later)))).toEqual(first);
    // A list of its own: component fields, nested paths and whole flattened names.
    const own = createShellyAdapter({ ignoreAttributes: ['temperature.tF', 'switch:0.voltage'] });
    const attrs = (updates(own.parse(`${SHELLY_PREFIX}/status/switch:0`, json(SHELLY_SWITCH_STATUS)))[0] as { attributes: Record<string, unknown> }).attributes;
    expect(attrs['switch:0.temperature']).toEqual({ tC: 53.3 });
    expect(attrs).not.toHaveProperty('switch:0.voltage');
    expect(attrs['switch:0.aenergy']).toEqual(SHELLY_SWITCH_STATUS.aenergy);
  });

  it('asks a Gen2 device who it is once (Shelly.GetDeviceInfo on <prefix>/rpc), and again when it comes back online', () => {
    const a = createShellyAdapter();
    const first = a.parse(`${SHELLY_PREFIX}/status/switch:0`, json(SHELLY_SWITCH_STATUS));
    const asked = publishes(first);
    expect(asked.map((m) => m.topic)).toEqual([`${SHELLY_PREFIX}/rpc`]);
    expect(JSON.parse(asked[0]?.payload ?? '{}')).toEqual({ id: expect.any(Number), src: 'inbetweenies', method: 'Shelly.GetDeviceInfo' });
    expect(publishes(a.parse(`${SHELLY_PREFIX}/events/rpc`, json(SHELLY_NOTIFY_STATUS)))).toEqual([]);
    expect(publishes(a.parse(`${SHELLY_PREFIX}/online`, text('false')))).toEqual([]);
    expect(publishes(a.parse(`${SHELLY_PREFIX}/online`, text('true'))).map((m) => m.topic)).toEqual([`${SHELLY_PREFIX}/rpc`]);
    expect(publishes(createShellyAdapter({ askDeviceInfo: false }).parse(`${SHELLY_PREFIX}/status/switch:0`, json(SHELLY_SWITCH_STATUS)))).toEqual([]);
    expect(a.filters).toContain('inbetweenies/rpc');
  });

  it('turns the GetDeviceInfo answer into the device: name, type from its components, model, room from config', () => {
    const a = createShellyAdapter({ rooms: { [SHELLY_PREFIX]: 'Hall' } });
    const request = JSON.parse(publishes(a.parse(`${SHELLY_PREFIX}/status/switch:0`, json(SHELLY_SWITCH_STATUS)))[0]?.payload ?? '{}') as { id: number };
    expect(updates(a.parse('inbetweenies/rpc', json(shellyRpcResponse(request.id, SHELLY_DEVICE_INFO))))).toEqual([
      { kind: 'meta', deviceId: id, name: 'Hall light', type: 'switch', room: 'Hall', manufacturer: 'Shelly', model: 'SNSW-001P16EU' },
    ]);
    // Answers to commands (Switch.Set) and to other clients' requests are not ingested; an error answer teaches nothing.
    expect(a.parse('inbetweenies/rpc', json(shellyRpcResponse(request.id, { was_on: false })))).toBeUndefined();
    expect(a.parse('inbetweenies/rpc', json(shellyRpcResponse(999_999, SHELLY_DEVICE_INFO)))).toBeUndefined();
    expect(rejection(a.parse('inbetweenies/rpc', text('{"id":')))).toBe('invalid_json');
  });

  it('a device without a name is called by its id; a component seen later corrects the type', () => {
    const a = createShellyAdapter();
    const request = JSON.parse(publishes(a.parse(`${SHELLY_PREFIX}/online`, text('true')))[0]?.payload ?? '{}') as { id: number };
    const meta = updates(a.parse('inbetweenies/rpc', json(shellyRpcResponse(request.id, { ...SHELLY_DEVICE_INFO, name: null, app: 'Plus2PM' }))));
    expect(meta).toEqual([expect.objectContaining({ kind: 'meta', name: SHELLY_PREFIX, type: 'switch', room: null })]);
    const cover = updates(a.parse(`${SHELLY_PREFIX}/status/cover:0`, json({ id: 0, state: 'open', current_pos: 100 })));
    expect(cover[0]).toEqual(expect.objectContaining({ kind: 'meta', type: 'cover' }));
    expect(cover[1]).toEqual({ kind: 'state', deviceId: id, attributes: { 'cover:0.state': 'open', 'cover:0.current_pos': 100 } });
  });

  it('reads announces: Gen1 on shellies/announce, Gen2 on <prefix>/announce', () => {
    const a = createShellyAdapter();
    expect(updates(a.parse('shellies/announce', json(SHELLY_GEN1_ANNOUNCE)))).toEqual([
      { kind: 'meta', deviceId: `shelly:shellies/${SHELLY_GEN1_ID}`, name: SHELLY_GEN1_ID, type: 'switch', room: null, manufacturer: 'Shelly', model: 'SHSW-1' },
    ]);
    expect(updates(a.parse(`${SHELLY_PREFIX}/announce`, json(SHELLY_DEVICE_INFO)))).toEqual([expect.objectContaining({ deviceId: id, name: 'Hall light' })]);
    expect(updates(a.parse('shellies/announce', json({ ...SHELLY_DEVICE_INFO, gen: 2 })))).toEqual([expect.objectContaining({ deviceId: id })]);
    expect(rejection(a.parse('shellies/announce', json({ model: 'x' })))).toBe('invalid_schema');
    expect(rejection(a.parse('shellies/announce', json({ id: 'a/b#' })))).toBe('invalid_device_id');
  });

  it('derives a type from components first, then the app or model name', () => {
    expect(shellyType(['input', 'switch'], '')).toBe('switch');
    expect(shellyType(['switch', 'cover'], '')).toBe('cover');
    expect(shellyType([], 'PlusPlugS SNPL-00112EU')).toBe('switch');
    expect(shellyType([], 'PlusHT SNSN-0013A')).toBe('sensor');
    expect(shellyType(['smoke'], 'PlusSmoke')).toBe('smoke');
    expect(shellyType([], 'SHWT-1')).toBe('water_leak');
    expect(shellyType([], 'something new')).toBeNull();
  });
});

function publishes(result: ParseResult | undefined): Array<{ topic: string; payload: string }> {
  if (!result?.ok) throw new Error(`expected ok, got ${JSON.stringify(result)}`);
  return (result.publish ?? []).map((m) => ({ topic: m.topic, payload: m.payload.toString() }));
}

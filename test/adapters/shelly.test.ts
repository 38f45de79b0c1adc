import { describe, expect, it } from 'vitest';
import { createShellyAdapter } from '../../src/ingest/adapters/shelly.js';
import { SHELLY_GEN1_ID, SHELLY_NOTIFY_EVENT, SHELLY_NOTIFY_FULL_STATUS, SHELLY_NOTIFY_STATUS, SHELLY_PREFIX, SHELLY_SWITCH_STATUS } from '../fixtures/adapters/shelly.js';
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
          'switch:0.aenergy': SHELLY_SWITCH_STATUS.aenergy,
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
});

import { describe, expect, it } from 'vitest';
import { createGenericAdapter } from '../../src/ingest/adapters/generic.js';
import { GENERIC_JSON, GENERIC_MAPPINGS, GENERIC_PLAIN } from '../fixtures/adapters/generic.js';
import { commandTopics, json, rejection, text, updates } from './parse-helpers.js';

describe('generic adapter', () => {
  const generic = createGenericAdapter({ mappings: GENERIC_MAPPINGS });

  it('maps named wildcards to device and attribute, parsing plain numbers and booleans', () => {
    expect(GENERIC_PLAIN.map(([topic, payload]) => updates(generic.parse(topic, text(payload)))[0])).toEqual([
      { kind: 'state', deviceId: 'generic:hall_lamp', attributes: { power: 'ON' } },
      { kind: 'state', deviceId: 'generic:hall_lamp', attributes: { brightness: 42 } },
      { kind: 'state', deviceId: 'generic:hall_lamp', attributes: { on: true } },
    ]);
    expect(generic.filters).toEqual(['home/+/+', 'sensors/+']);
  });

  it('takes a JSON object as attributes when the pattern has no {attribute}', () => {
    const [topic, body] = GENERIC_JSON;
    expect(updates(generic.parse(topic, json(body)))).toEqual([{ kind: 'state', deviceId: 'sensor:weather', attributes: body }]);
    expect(updates(generic.parse('sensors/door', text('1')))).toEqual([{ kind: 'state', deviceId: 'sensor:door', attributes: { value: 1 } }]);
    expect(rejection(generic.parse('sensors/door', text('{"a":')))).toBe('invalid_json');
    expect(rejection(generic.parse('sensors/door', Buffer.from([0xc3, 0x28])))).toBe('binary_payload');
  });

  it('json payload mode refuses plain text', () => {
    const strict = createGenericAdapter({ mappings: [{ pattern: 'x/{device}/{attribute}', payload: 'json' }] });
    expect(rejection(strict.parse('x/a/b', text('ON')))).toBe('invalid_json');
    expect(updates(strict.parse('x/a/b', text('"ON"')))).toEqual([{ kind: 'state', deviceId: 'generic:a', attributes: { b: 'ON' } }]);
  });

  it('sends commands to the configured command topic', () => {
    expect(commandTopics(generic, 'generic:hall_lamp', { power: 'OFF', brightness: 10, on: false, available: true })).toEqual([
      ['home/hall_lamp/power/set', 'OFF'],
      ['home/hall_lamp/brightness/set', '10'],
      ['home/hall_lamp/on/set', 'false'],
    ]);
    expect(commandTopics(generic, 'sensor:weather', { raining: true })).toEqual([['sensors/weather/cmd', '{"raining":true}']]);
    expect(generic.ownsDevice?.('generic:x')).toBe(true);
    expect(generic.ownsDevice?.('lamp-1')).toBe(false);
  });

  it('checks patterns at construction', () => {
    expect(() => createGenericAdapter({ mappings: [{ pattern: 'home/{attribute}' }] })).toThrow(/exactly one \{device\}/);
    expect(() => createGenericAdapter({ mappings: [{ pattern: 'home/#/{device}' }] })).toThrow(/each level must be/);
    expect(() => createGenericAdapter({ mappings: [{ pattern: 'a/{device}', commandTopic: 'a/set' }] })).toThrow(/commandTopic/);
  });
});

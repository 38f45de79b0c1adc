import { describe, expect, it } from 'vitest';
import type { FiltersChangedEvent } from '../../src/ingest/adapter.js';
import { createHomeAssistantAdapter } from '../../src/ingest/adapters/homeassistant.js';
import { compileTemplate } from '../../src/ingest/adapters/ha-template.js';
import { TopicRouter } from '../../src/ingest/router.js';
import * as F from '../fixtures/adapters/homeassistant.js';
import { commandTopics, json, rejection, text, updates } from './parse-helpers.js';

function discovered() {
  const ha = createHomeAssistantAdapter();
  const events: FiltersChangedEvent[] = [];
  ha.onFiltersChanged?.((e) => events.push(e));
  for (const [topic, config] of [
    [F.HA_MOTION_TOPIC, F.HA_MOTION_CONFIG],
    [F.HA_BEDROOM_T_TOPIC, F.HA_BEDROOM_T_CONFIG],
    [F.HA_BEDROOM_H_TOPIC, F.HA_BEDROOM_H_CONFIG],
    [F.HA_SWITCH_TOPIC, F.HA_SWITCH_CONFIG],
    [F.HA_LIGHT_TOPIC, F.HA_LIGHT_CONFIG],
    [F.HA_DEVICE_TOPIC, F.HA_DEVICE_CONFIG],
  ] as const) {
    updates(ha.parse(topic, json(config)));
  }
  return { ha, events };
}

describe('home assistant discovery adapter', () => {
  it('turns configs into meta with abbreviations expanded', () => {
    const ha = createHomeAssistantAdapter();
    expect(updates(ha.parse(F.HA_SWITCH_TOPIC, json(F.HA_SWITCH_CONFIG)))).toEqual([
      { kind: 'meta', deviceId: 'ha:irrigation-ctl-1', name: 'Irrigation', type: 'switch', room: 'Garden', manufacturer: 'Acme', model: 'Valve 2' },
    ]);
    expect(updates(ha.parse(F.HA_DEVICE_TOPIC, json(F.HA_DEVICE_CONFIG)))).toEqual([
      { kind: 'meta', deviceId: 'ha:ea334450945afc', name: 'Kitchen', type: 'sensor', room: null, manufacturer: 'Bla electronics', model: 'xya' },
    ]);
  });

  it('refuses discovery topics with empty or odd levels and configs without an id (fast-check found ha: with an empty id)', () => {
    const ha = createHomeAssistantAdapter();
    expect(rejection(ha.parse('homeassistant/my_plug//config', json({})))).toBe('invalid_topic');
    expect(rejection(ha.parse('homeassistant/switch/a b/config', json({ name: 'x' })))).toBe('invalid_topic');
    expect(rejection(ha.parse('homeassistant/switch/plug/config', json({ name: 'x', unique_id: '', device: { identifiers: [''] } })))).toMatch(/invalid_schema/);
  });

  it('learns state and availability topics (with ~ expanded) as run-time filters, and tells listeners', () => {
    const { ha, events } = discovered();
    expect([...(ha.dynamicFilters?.() ?? [])].sort()).toEqual(
      ['garden/irrigation/state', 'garden/irrigation/status', 'homeassistant/binary_sensor/garden/state', 'homeassistant/light/kitchen/state', 'homeassistant/sensor/sensorBedroom/state', 'sensorBedroom/state'].sort(),
    );
    expect(events.length).toBe(6);
    expect(events.every((e) => !e.resubscribe)).toBe(true);
    ha.parse('homeassistant/status', text('online'));
    expect(events.at(-1)).toEqual({ adapter: 'homeassistant', resubscribe: true });
  });

  it('evaluates value templates on a shared JSON state topic, booleans for binary sensors, plain values otherwise', () => {
    const { ha } = discovered();
    expect(updates(ha.parse('homeassistant/sensor/sensorBedroom/state', json(F.HA_BEDROOM_STATE)))).toEqual([
      { kind: 'state', deviceId: 'ha:bedroom01ae', attributes: { sensorBedroomT: 23.2, sensorBedroomH: 43.7 } },
    ]);
    expect(updates(ha.parse('sensorBedroom/state', json({ temperature: 19.5, humidity: 50 })))).toEqual([
      { kind: 'state', deviceId: 'ha:ea334450945afc', attributes: { some_unique_component_id1: 19.5, some_unique_id2: 50 } },
    ]);
    expect(updates(ha.parse('homeassistant/binary_sensor/garden/state', text('ON')))).toEqual([{ kind: 'state', deviceId: 'ha:01ad', attributes: { garden: true } }]);
    expect(updates(ha.parse('garden/irrigation/state', text('OFF')))).toEqual([{ kind: 'state', deviceId: 'ha:irrigation-ctl-1', attributes: { irrigation: false } }]);
    expect(updates(ha.parse('garden/irrigation/status', text('offline')))).toEqual([{ kind: 'availability', deviceId: 'ha:irrigation-ctl-1', available: false }]);
    expect(updates(ha.parse('homeassistant/light/kitchen/state', json({ state: 'ON', brightness: 200 })))).toEqual([
      { kind: 'state', deviceId: 'ha:kitchen_light', attributes: { state: { state: 'ON', brightness: 200 } } },
    ]);
  });

  it('counts a template it cannot evaluate, and a missing key, as rejections', () => {
    const ha = createHomeAssistantAdapter();
    updates(ha.parse('homeassistant/sensor/x/config', json({ stat_t: 'x/state', val_tpl: "{{ value_json.t if value_json.t > 0 else 'low' }}", uniq_id: 'x1' })));
    expect(rejection(ha.parse('x/state', json({ t: 3 })))).toBe('unsupported_template');
    updates(ha.parse('homeassistant/sensor/y/config', json({ stat_t: 'y/state', val_tpl: '{{ value_json.t }}', uniq_id: 'y1' })));
    expect(rejection(ha.parse('y/state', json({ other: 3 })))).toBe('invalid_schema');
    expect(rejection(ha.parse('y/state', text('not json')))).toBe('invalid_schema');
  });

  it('removes entities on an empty retained config, and rebuilds from the same retained configs', () => {
    const { ha } = discovered();
    expect(updates(ha.parse(F.HA_SWITCH_TOPIC, Buffer.alloc(0)))).toEqual([]);
    expect(ha.parse('garden/irrigation/state', text('ON'))).toBeUndefined();
    expect(ha.dynamicFilters?.()).not.toContain('garden/irrigation/state');
    updates(ha.parse(F.HA_DEVICE_TOPIC, Buffer.alloc(0)));
    expect(ha.dynamicFilters?.()).not.toContain('sensorBedroom/state');
    // A fresh adapter (a restart) fed the retained configs knows the same topics.
    const again = discovered().ha;
    expect(again.dynamicFilters?.()).toContain('garden/irrigation/state');
  });

  it('sends commands to command_topic with payload_on/off and `{{ value }}` command templates', () => {
    const { ha } = discovered();
    expect(commandTopics(ha, 'ha:irrigation-ctl-1', { irrigation: true, available: true })).toEqual([['garden/irrigation/set', 'ON']]);
    expect(commandTopics(ha, 'ha:kitchen_light', { state: { state: 'OFF' } })).toEqual([['homeassistant/light/kitchen/set', '{"state":"OFF"}']]);
    updates(ha.parse('homeassistant/number/n/config', json({ cmd_t: 'n/set', stat_t: 'n/state', cmd_tpl: '{"value": {{ value }}}', uniq_id: 'n1' })));
    expect(commandTopics(ha, 'ha:n1', { state: 7 })).toEqual([['n/set', '{"value": 7}']]);
    expect(commandTopics(ha, 'ha:01ad', { garden: true })).toEqual([]); // a binary sensor takes no commands
  });

  it('rejects bad configs without forgetting good ones', () => {
    const { ha } = discovered();
    expect(rejection(ha.parse('homeassistant/sensor/bad/config', text('{')))).toBe('invalid_json');
    expect(rejection(ha.parse('homeassistant/sensor/bad/config', json({ stat_t: 'a/+/b' })))).toBe('invalid_schema');
    expect(rejection(ha.parse('homeassistant/device/bad/config', json({ cmps: { a: { stat_t: 'x' } } })))).toBe('invalid_schema');
    expect(ha.dynamicFilters?.()).toContain('garden/irrigation/state');
    const small = createHomeAssistantAdapter({ maxEntities: 1 });
    updates(small.parse(F.HA_SWITCH_TOPIC, json(F.HA_SWITCH_CONFIG)));
    expect(rejection(small.parse(F.HA_MOTION_TOPIC, json(F.HA_MOTION_CONFIG)))).toBe('invalid_schema');
  });

  it('skips entities whose state topic another adapter ingests', () => {
    const ha = createHomeAssistantAdapter({ claimedElsewhere: (t) => t.startsWith('zigbee2mqtt/') });
    expect(updates(ha.parse('homeassistant/switch/0x00158d00018255df/switch/config', json({ stat_t: 'zigbee2mqtt/my_plug', uniq_id: 'u', dev: { ids: ['zigbee2mqtt_0x00158d00018255df'] } })))).toEqual([]);
    expect(ha.dynamicFilters?.()).toEqual([]);
  });

  it('is routed by the topic router through its run-time filters', () => {
    const { ha } = discovered();
    const router = new TopicRouter([ha]);
    expect(router.route('garden/irrigation/state', text('ON'))?.adapter.name).toBe('homeassistant');
    expect(router.route('unrelated/topic', text('ON'))).toBeUndefined();
    expect(router.adapterForDevice('ha:irrigation-ctl-1')).toBe(ha);
    updates(ha.parse('homeassistant/sensor/late/config', json({ stat_t: 'late/state', uniq_id: 'late' })));
    expect(router.route('late/state', text('1'))?.result).toEqual({ ok: true, updates: [{ kind: 'state', deviceId: 'ha:late', attributes: { state: 1 } }] });
  });
});

describe('home assistant value templates', () => {
  const run = (t: string, payload: string) => {
    const compiled = compileTemplate(t);
    if (!compiled) return 'unsupported';
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      parsed = undefined;
    }
    const r = compiled({ text: payload, json: parsed });
    return r.ok ? r.value : 'missing';
  };
  it('evaluates the common forms', () => {
    expect(run('{{ value }}', 'abc')).toBe('abc');
    expect(run('{{value_json.a.b}}', '{"a":{"b":2}}')).toBe(2);
    expect(run("{{ value_json['x y'] }}", '{"x y":true}')).toBe(true);
    expect(run('{{ value_json.list[1] }}', '{"list":[5,6]}')).toBe(6);
    expect(run('{{ value_json.t | float | round(1) }}', '{"t":"21.456"}')).toBe(21.5);
    expect(run('{{ value_json.t | int }}', '{"t":21.9}')).toBe(21);
    expect(run("{{ value_json.s | default('none') }}", '{}')).toBe('none');
    expect(run('{{ value_json.s | upper }}', '{"s":"on"}')).toBe('ON');
    expect(run('{{ value_json.missing }}', '{}')).toBe('missing');
    expect(run('{{ value_json.__proto__ }}', '{}')).toBe('missing');
  });
  it('refuses what it cannot evaluate', () => {
    for (const t of ['{% if value %}1{% endif %}', '{{ value_json.a + 1 }}', '{{ states("x") }}', '{{ value_json.a | timestamp_custom("%H") }}', 'plain', '{{ value }} and {{ value }}']) {
      expect(run(t, '{}'), t).toBe('unsupported');
    }
  });
});

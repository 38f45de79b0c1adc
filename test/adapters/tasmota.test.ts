import { describe, expect, it } from 'vitest';
import { createTasmotaAdapter } from '../../src/ingest/adapters/tasmota.js';
import {
  TASMOTA_DISCOVERY,
  TASMOTA_DISCOVERY_MAC,
  TASMOTA_RESULT_OTHER,
  TASMOTA_RESULT_POWER,
  TASMOTA_SENSOR,
  TASMOTA_STATE,
  TASMOTA_TOPIC,
} from '../fixtures/adapters/tasmota.js';
import { commandTopics, json, rejection, text, updates } from './parse-helpers.js';

describe('tasmota adapter', () => {
  const tasmota = createTasmotaAdapter();
  const id = `tasmota:${TASMOTA_TOPIC}`;

  it('ingests STATE without the noise, and SENSOR readings', () => {
    expect(updates(tasmota.parse(`tele/${TASMOTA_TOPIC}/STATE`, json(TASMOTA_STATE)))).toEqual([{ kind: 'state', deviceId: id, attributes: { POWER: 'ON' } }]);
    expect(updates(tasmota.parse(`tele/${TASMOTA_TOPIC}/SENSOR`, json(TASMOTA_SENSOR)))).toEqual([
      { kind: 'state', deviceId: id, attributes: { ENERGY: TASMOTA_SENSOR.ENERGY, AM2301: TASMOTA_SENSOR.AM2301 } },
    ]);
  });

  it('reads LWT, RESULT (state attributes only) and POWER<n>', () => {
    expect(updates(tasmota.parse(`tele/${TASMOTA_TOPIC}/LWT`, text('Offline')))).toEqual([{ kind: 'availability', deviceId: id, available: false }]);
    expect(updates(tasmota.parse(`tele/${TASMOTA_TOPIC}/LWT`, text('Online')))).toEqual([{ kind: 'availability', deviceId: id, available: true }]);
    expect(updates(tasmota.parse(`stat/${TASMOTA_TOPIC}/RESULT`, json(TASMOTA_RESULT_POWER)))).toEqual([{ kind: 'state', deviceId: id, attributes: { POWER: 'OFF' } }]);
    expect(updates(tasmota.parse(`stat/${TASMOTA_TOPIC}/RESULT`, json(TASMOTA_RESULT_OTHER)))).toEqual([]);
    expect(updates(tasmota.parse(`stat/${TASMOTA_TOPIC}/POWER2`, text('ON')))).toEqual([{ kind: 'state', deviceId: id, attributes: { POWER2: 'ON' } }]);
    expect(rejection(tasmota.parse(`stat/${TASMOTA_TOPIC}/POWER2`, text('50')))).toBe('invalid_schema');
    expect(tasmota.parse(`stat/${TASMOTA_TOPIC}/STATUS5`, json({ StatusNET: {} }))).toBeUndefined();
    expect(tasmota.parse(`tele/${TASMOTA_TOPIC}/INFO1`, json({ Info1: {} }))).toBeUndefined();
  });

  it('turns discovery config into meta', () => {
    expect(updates(tasmota.parse(`tasmota/discovery/${TASMOTA_DISCOVERY_MAC}/config`, json(TASMOTA_DISCOVERY)))).toEqual([
      { kind: 'meta', deviceId: id, name: 'Kitchen plug', type: 'switch', room: null, model: 'Sonoff Pow R2' },
    ]);
    expect(tasmota.parse(`tasmota/discovery/${TASMOTA_DISCOVERY_MAC}/sensors`, json({ sn: {} }))).toBeUndefined();
    expect(rejection(tasmota.parse(`tasmota/discovery/${TASMOTA_DISCOVERY_MAC}/config`, json({ dn: 'no topic' })))).toBe('invalid_schema');
  });

  it('sends one cmnd/<topic>/<Command> per commandable attribute', () => {
    expect(commandTopics(tasmota, id, { POWER1: 'ON', Dimmer: 40, POWER2: false, ENERGY: { Power: 1 }, Restart: 1, available: false })).toEqual([
      [`cmnd/${TASMOTA_TOPIC}/POWER1`, 'ON'],
      [`cmnd/${TASMOTA_TOPIC}/Dimmer`, '40'],
      [`cmnd/${TASMOTA_TOPIC}/POWER2`, 'OFF'],
    ]);
  });
});

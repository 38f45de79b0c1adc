/**
 * `devices`: a ROOM column with the room's name, and a state that stays readable — attribute=value pairs cut to the
 * width with how many more there are — against a real store filled through the real broker; `--json` keeps it all.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatState, formatValue } from '../../src/commands/devices-view.js';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

const LONG_STATE: Record<string, unknown> = {
  'switch:0.output': true,
  'switch:0.apower': 41.2,
  'switch:0.voltage': 233.1,
  'switch:0.current': 0.21,
  'switch:0.aenergy': { total: 1234.5, by_minute: [12.1, 13.4, 11.9], minute_ts: 1654511140 },
  'switch:0.temperature': { tC: 53.3, tF: 127.9 },
  ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`input:${i}.state`, false])),
};

describe('devices view (pure)', () => {
  it('renders values compactly: words bare, other strings quoted, objects as short JSON', () => {
    expect(formatValue('ON')).toBe('ON');
    expect(formatValue('living room')).toBe('"living room"');
    expect(formatValue(12.5)).toBe('12.5');
    expect(formatValue({ total: 1234.5, by_minute: [12.1, 13.4, 11.9] }).length).toBeLessThanOrEqual(24);
  });

  it('fits the width and says how many attributes are left out', () => {
    const text = formatState(LONG_STATE, 80);
    expect(text.length).toBeLessThanOrEqual(80);
    expect(text).toMatch(/^switch:0\.output=true switch:0\.apower=41\.2 .* … \(\+\d+\)$/);
    const shown = text.split(' ').filter((p) => p.includes('=')).length;
    expect(Number(/\(\+(\d+)\)$/.exec(text)?.[1]) + shown).toBe(Object.keys(LONG_STATE).length);
    expect(formatState({ state: 'ON', brightness: 200 }, 80)).toBe('state=ON brightness=200');
    expect(formatState({}, 80)).toBe('-');
  });
});

describe('devices command', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    assertBuilt();
    gateway = await startTestGateway();
    const device = await gateway.connect('kitchen-plug');
    await device.publishAsync('devices/plug-1/meta', JSON.stringify({ name: 'Kitchen plug', type: 'switch', room: 'Kitchen & Dining' }), { qos: 1, retain: true });
    await device.publishAsync('devices/plug-1/state', JSON.stringify(LONG_STATE), { qos: 1 });
    await device.publishAsync('devices/lamp-2/state', JSON.stringify({ state: 'OFF' }), { qos: 1 });
    await waitFor(() => (gateway.daemon.status().pending ?? 0) >= 3, 5000, 'the states in the store');
  });
  afterAll(async () => gateway?.close());

  const devices = (...args: string[]) => spawnSync(process.execPath, [CLI, 'devices', '--data-dir', gateway.dataDir, ...args], { encoding: 'utf8', timeout: 30_000 });

  it('prints ID, NAME, TYPE, ROOM (the room name), SYNC and a state cut to the width', () => {
    const r = devices();
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`store ${join(gateway.dataDir, 'gateway.db')}`); // what was read, first
    expect(lines[1]).toMatch(/^ID +NAME +TYPE +ROOM +SYNC +STATE$/);
    const plug = lines.find((l) => l.startsWith('plug-1 '));
    expect(plug).toMatch(/^plug-1 +Kitchen plug +switch +Kitchen & Dining +pending +switch:0\.output=true .* … \(\+\d+\)$/);
    // Not piped to a terminal: the table fits in 160 columns.
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(160);
    expect(lines.find((l) => l.startsWith('lamp-2 '))).toMatch(/^lamp-2 +- +- +- +pending +state=OFF$/);
  });

  it('--json keeps the whole state and adds the room name', () => {
    const r = devices('--json');
    expect(r.status, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as Array<{ id: string; room: string | null; state: Record<string, unknown> }>;
    const plug = list.find((d) => d.id === 'plug-1');
    expect(plug?.room).toBe('Kitchen & Dining');
    expect(plug?.state).toEqual(LONG_STATE);
  });
});

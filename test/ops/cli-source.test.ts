/**
 * `status`, `devices` and `conflicts` find their daemon as `sync` does and say what they read: the built CLI against
 * the built daemon (a child process, listener on port 0), then against its store alone, then with neither.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { openStoreFile } from '../helpers/store-file.js';
import { waitForItem } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'ib-cli-source-'));
const dataDir = join(root, 'gw');
const store = join(dataDir, 'gateway.db');
/** A port nothing listens on. */
const CLOSED = '1';
let daemon: DaemonProcess | undefined;
let port: string;

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', timeout: 30_000, env: { ...process.env, INBETWEENIES_LOG_LEVEL: 'warn', ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  daemon = await spawnDaemon({ dataDir });
  const line = await waitForItem(daemon.lines, (l) => l.includes('health, metrics and control listening'), 15_000, 'the listener');
  port = /"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(line)?.[1] ?? '';
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${daemon.mqttPort}`, { reconnectPeriod: 0 });
  await client.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Kitchen lamp', type: 'light', room: 'Kitchen' }), { qos: 1 });
  await client.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'ON' }), { qos: 1 });
  await client.endAsync();
  // Two conflict-log entries as the sync records them (set up through a connection of the test's own).
  const db = openStoreFile(store, { writable: true });
  const insert = db.prepare('INSERT INTO conflicts (recorded_at, entity_type, entity_id, type, reason, resolution, server_version, client_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  insert.run(1_700_000_000_000, 'entity_state', 'lamp-1', 'UPDATE_UPDATE', 'both sides changed lamp-1', 'server_wins', '{"state":{"state":"OFF"}}', '{"state":{"state":"ON"}}');
  insert.run(1_700_000_100_000, 'device', 'plug-2', 'REJECTED', 'INVALID_ENTITY: name too long', 'rejected', null, '{"name":"x"}');
  db.close();
});
afterAll(async () => {
  await daemon?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('with the daemon running', () => {
  it('status, devices and conflicts say "daemon at URL (pid N)" first and read the daemon', () => {
    const head = `daemon at http://127.0.0.1:${port} (pid ${daemon?.proc.pid ?? 0})`;
    const status = cli(['status', '--http-port', port]);
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout.split('\n')[0]).toBe(head);
    expect(status.stdout).toMatch(/^daemon: +version \d+\.\d+\.\d+, pid \d+/m);
    const json = cli(['status', '--http-port', port, '--json']);
    expect(json.stderr.trim()).toBe(head);
    expect(JSON.parse(json.stdout)).toMatchObject({ source: 'daemon', devices: 1, version: expect.any(String) });

    const devices = cli(['devices', '--http-port', port]);
    expect(devices.status, devices.stderr).toBe(0);
    const lines = devices.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(head);
    expect(lines[1]).toMatch(/^ID +NAME +TYPE +ROOM +SYNC +STATE$/);
    expect(lines[2]).toMatch(/^lamp-1 +Kitchen lamp +light +Kitchen +pending +state=ON$/);
    const list = cli(['devices', '--http-port', port, '--json']);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ id: 'lamp-1', name: 'Kitchen lamp', room: 'Kitchen', state: { state: 'ON' }, pending: true })]);

    const conflicts = cli(['conflicts', '--http-port', port]);
    expect(conflicts.status, conflicts.stderr).toBe(0);
    expect(conflicts.stdout).toBe(
      [
        head,
        '2023-11-14T22:15:00.000Z  REJECTED  device plug-2  → rejected',
        '  reason:  INVALID_ENTITY: name too long',
        '  server:  -',
        '  gateway: {"name":"x"}',
        '2023-11-14T22:13:20.000Z  UPDATE_UPDATE  entity_state lamp-1  → server_wins',
        '  reason:  both sides changed lamp-1',
        '  server:  {"state":{"state":"OFF"}}',
        '  gateway: {"state":{"state":"ON"}}',
        '',
      ].join('\n'),
    );
    const one = cli(['conflicts', '--http-port', port, '--json', '--limit', '1']);
    expect(JSON.parse(one.stdout)).toEqual([
      { id: 2, recordedAt: 1_700_000_100_000, entityType: 'device', entityId: 'plug-2', type: 'REJECTED', reason: 'INVALID_ENTITY: name too long', resolution: 'rejected', serverVersion: null, clientVersion: { name: 'x' } },
    ]);
    expect(cli(['conflicts', '--limit', '0', '--http-port', port]).status).toBe(2);
  });

  it('devices and conflicts read the store alone with --data-dir (the same answers)', () => {
    const devices = cli(['devices', '--data-dir', dataDir, '--json']);
    expect(devices.stderr.trim()).toBe(`store ${store}`);
    expect(JSON.parse(devices.stdout)).toEqual(JSON.parse(cli(['devices', '--http-port', port, '--json']).stdout));
    const conflicts = cli(['conflicts', '--data-dir', dataDir, '--json']);
    expect(JSON.parse(conflicts.stdout)).toEqual(JSON.parse(cli(['conflicts', '--http-port', port, '--json']).stdout));
  });
});

describe('without the daemon', () => {
  it('the store the config names, said so: "store PATH (daemon not running)"', () => {
    const config = join(root, 'gateway.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\nhttp:\n  port: ${CLOSED}\n`);
    for (const command of ['status', 'devices', 'conflicts']) {
      const r = cli([command, '--config', config]);
      expect(r.status, `${command}: ${r.stderr}`).toBe(0);
      expect(r.stdout.split('\n')[0], command).toBe(`store ${store} (daemon not running)`);
      expect(r.stderr, command).toContain(`daemon not reachable at http://127.0.0.1:${CLOSED} (ECONNREFUSED); reading the store in ${dataDir}`);
    }
  });

  it('neither a daemon nor a store: says so and exits 1 (a missing ./data is not "offline / never")', () => {
    // No flags at all, in a folder without ./data, and nothing on the configured port.
    for (const command of ['status', 'devices', 'conflicts']) {
      const r = cli([command], { INBETWEENIES_HTTP_PORT: CLOSED });
      expect(r.status, command).toBe(1);
      expect(r.stdout, command).toBe('');
      expect(r.stderr, command).toContain(`no daemon at http://127.0.0.1:${CLOSED} and no gateway store at data/gateway.db`);
    }
    const dir = cli(['status', '--data-dir', join(root, 'nothing-here')]);
    expect(dir.status).toBe(1);
    expect(dir.stderr).toContain(`no gateway store at ${join(root, 'nothing-here', 'gateway.db')}`);
  });
});

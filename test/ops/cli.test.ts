/** The CLI as users run it: status / sync against the running daemon, hash-password, --help, --json. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/broker/password.js';
import { CLI, spawnDaemon, type DaemonProcess } from '../helpers/daemon-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'ib-cli-ops-'));
let daemon: DaemonProcess;
let httpPort: number;

function cli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 30_000, env: { ...process.env, INBETWEENIES_LOG_LEVEL: 'warn' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  daemon = await spawnDaemon({ dataDir, extraArgs: ['--http-port', '0'] });
  const deadline = Date.now() + 10_000;
  let line: string | undefined;
  while ((line = daemon.lines.find((l) => l.includes('health, metrics and control listening'))) === undefined && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  line ??= '';
  httpPort = Number(/"url":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(line)?.[1]);
  expect(httpPort).toBeGreaterThan(0);
});
afterAll(async () => {
  await daemon?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A port nothing listens on. */
const CLOSED = '1';

describe('CLI against the running daemon', () => {
  it('status --data-dir DIR --json reads the store exactly as before (the original interface), daemon running', () => {
    const r = cli(['status', '--data-dir', dataDir, '--json']);
    expect(r.status).toBe(0);
    expect(Object.keys(JSON.parse(r.stdout) as object).sort()).toEqual(
      ['conflicts', 'lastError', 'lastResult', 'lastSync', 'lastSyncAt', 'mode', 'oldestPendingAgeMs', 'pending'].sort(),
    );
  });

  it('status --http-port N asks the daemon: health, MQTT clients, devices, jobs; --json for scripts', () => {
    const text = cli(['status', '--http-port', String(httpPort)]);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^health: +ok$/m);
    expect(text.stdout).toMatch(/^mqtt: +127\.0\.0\.1:\d+, 0 client\(s\)$/m);
    expect(text.stdout).toMatch(/^sync: +offline \(no server credentials\)$/m);
    expect(text.stdout).toMatch(/^job reconcile /m);
    const json = cli(['status', '--http-port', String(httpPort), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ source: 'daemon', brokerClients: 0, devices: 0, pending: 0, health: { healthy: true } });
  });

  it('status falls back to the store when the daemon does not answer', () => {
    const r = cli(['status', '--http-port', CLOSED, '--data-dir', dataDir, '--json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/daemon not reachable at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\); reading the store/);
    expect(JSON.parse(r.stdout)).toMatchObject({ pending: 0, mode: 'offline' });
  });

  it('sync asks the daemon, and says why when it cannot', () => {
    const unconfigured = cli(['sync', '--http-port', String(httpPort)]);
    expect(unconfigured.status).toBe(1);
    expect(unconfigured.stderr).toContain('sync failed (409): CONFIG_INVALID: sync is not configured');
    const down = cli(['sync', '--http-port', CLOSED]);
    expect(down.status).toBe(1);
    expect(down.stderr).toContain('the daemon is not reachable at http://127.0.0.1:1');
  });
});

describe('CLI commands', () => {
  it('hash-password reads stdin and prints a hash that verifies', async () => {
    const r = cli(['hash-password', '--cost', '10'], 'correct horse\n');
    expect(r.status).toBe(0);
    const hash = r.stdout.trim();
    expect(hash).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('wrong', hash)).toBe(false);
    const json = cli(['hash-password', '--json', '--cost', '10'], 'x\n');
    expect(JSON.parse(json.stdout)).toHaveProperty('hash');
    expect(cli(['hash-password'], '\n').status).toBe(2);
    expect(cli(['hash-password', '--cost', '40'], 'x\n').stderr).toContain('--cost: expected an integer 10..20');
  });

  const COMMANDS = ['run', 'server', 'server add-client', 'status', 'sync', 'devices', 'conflicts', 'backup', 'check-config', 'hash-password', 'simulate', 'demo'];

  it('--help everywhere: exit 0 with the usage on stdout', () => {
    for (const command of COMMANDS) {
      const r = cli([...command.split(' '), '--help']);
      expect(r.status, command).toBe(0);
      expect(r.stdout, command).toContain(`usage: inbetweenies-gateway ${command.split(' ')[0]}`);
    }
    const top = cli(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/hash-password/);
    expect(top.stdout).toMatch(/^ {2}sync /m);
    // --help wins over a bad option next to it.
    expect(cli(['run', '--bogus', '--help']).status).toBe(0);
  });

  it('--version everywhere: the package.json version, exit 0', () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['-V'], ...COMMANDS.map((c) => [...c.split(' '), '--version'])]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toBe(`${version}\n`);
    }
  });

  it('usage errors exit 2 with the message on stderr', () => {
    for (const command of COMMANDS) {
      const r = cli([...command.split(' '), '--no-such-option']);
      expect(r.status, command).toBe(2);
      expect(r.stderr, command).toContain("Unknown option '--no-such-option'");
    }
    expect(cli(['no-such-command']).status).toBe(2);
    expect(cli([]).status).toBe(2);
    expect(cli(['run', '--mqtt-port', 'x']).stderr).toContain('--mqtt-port: expected an integer 0..65535, got "x"');
    expect(cli(['check-config']).status).toBe(2);
  });

  it('check-config lists a bad job schedule with its path and exits non-zero', () => {
    const file = join(dataDir, 'bad.yaml');
    writeFileSync(file, 'jobs:\n  maintenance:\n    schedule: "61 * * * *"\nhttp:\n  port: 99999\n');
    const r = cli(['check-config', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/jobs\.maintenance\.schedule/);
    expect(r.stderr).toMatch(/http\.port/);
    expect(cli(['check-config', 'config/gateway.example.yaml']).status).toBe(0);
  });
});

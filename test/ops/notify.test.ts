/**
 * sd_notify against a real unix datagram socket given as NOTIFY_SOCKET (docs/operations.md §systemd): the built daemon
 * as a child process (native sd-notify module, and the systemd-notify fallback), the server command, and the watchdog
 * withheld while the store refuses writes (in-process).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { loadNativeSdNotify, watchdogPeriodMs } from '../../src/daemon/notify.js';
import { storePath } from '../../src/store/device-queries.js';
import { CLI, spawnDaemon, type DaemonProcess } from '../helpers/daemon-process.js';
import { getJson, openNotifySocket, startOpsGateway, type NotifySocket, type OpsGateway } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function daemonUnderNotify(backend: 'auto' | 'binary'): Promise<{ sock: NotifySocket; daemon: DaemonProcess; dataDir: string }> {
  const sock = await openNotifySocket();
  cleanups.push(() => sock.close());
  const dataDir = mkdtempSync(join(tmpdir(), 'ib-notify-gw-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const daemon = await spawnDaemon({
    dataDir,
    env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '600000', INBETWEENIES_SD_NOTIFY: backend },
  });
  cleanups.push(async () => {
    if (daemon.proc.exitCode === null) await daemon.kill9();
  });
  return { sock, daemon, dataDir };
}

async function checkLifecycle(backend: 'auto' | 'binary'): Promise<void> {
  const { sock, daemon, dataDir } = await daemonUnderNotify(backend);
  const ready = await sock.waitFor((m) => m.includes('READY=1'), 10_000, 'READY=1');
  // READY=1 means the broker listens and the store is open: both hold the moment it arrives.
  expect(existsSync(storePath(dataDir))).toBe(true);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${daemon.mqttPort}`, { reconnectPeriod: 0 });
  await client.endAsync();
  expect(ready).toMatch(/STATUS=0 devices, 0 pending, last sync never, offline \(no credentials\), \d+ mqtt clients/);
  // WATCHDOG_USEC=600 ms: fed at least twice per period while healthy.
  const start = sock.messages.length;
  await new Promise((r) => setTimeout(r, 1300));
  const watchdogs = sock.messages.slice(start).filter((m) => m === 'WATCHDOG=1').length;
  expect(watchdogs).toBeGreaterThanOrEqual(3);
  const t0 = Date.now();
  const code = await daemon.stop();
  expect(code).toBe(0);
  expect(Date.now() - t0).toBeLessThan(15_000);
  const stopping = sock.messages.find((m) => m.startsWith('STOPPING=1'));
  expect(stopping).toMatch(/STATUS=stopping: /);
  expect(sock.messages.indexOf(stopping ?? '')).toBeGreaterThan(sock.messages.indexOf(ready));
  expect(daemon.lines.join('\n')).toContain(backend === 'binary' ? '"notify":"binary"' : '"notify":"native"');
}

describe('systemd notify (NOTIFY_SOCKET)', () => {
  it('the native sd-notify module loads here (libsystemd-dev is installed in CI)', () => {
    expect(loadNativeSdNotify()).toBeDefined();
  });

  it('daemon with the native module: READY=1 once broker and store are up, WATCHDOG=1 while healthy, STOPPING=1 on SIGTERM', async () => {
    await checkLifecycle('auto');
  });

  it('daemon with the systemd-notify fallback: the same messages', async () => {
    await checkLifecycle('binary');
  });

  it('reads WATCHDOG_USEC only for its own pid (sd_watchdog_enabled)', () => {
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(30_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(30_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).toBeNull();
    expect(watchdogPeriodMs({ WATCHDOG_USEC: 'x' }, 42)).toBeNull();
    expect(watchdogPeriodMs({}, 42)).toBeNull();
  });

  it('the server command: READY=1 once it listens, STOPPING=1 on SIGTERM', async () => {
    const sock = await openNotifySocket();
    cleanups.push(() => sock.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'ib-notify-srv-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const proc = spawn(process.execPath, [CLI, 'server', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir], {
      env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    cleanups.push(() => void proc.kill('SIGKILL'));
    const ready = await sock.waitFor((m) => m.includes('READY=1'), 10_000, 'READY=1 from the server');
    const url = /listening on (http:\/\/\S+)/.exec(ready)?.[1];
    expect(url).toBeDefined();
    const health = await getJson(`${url}/api/v1/health`);
    expect(health.status).toBe(200);
    await sock.waitFor((m) => m === 'WATCHDOG=1', 2000, 'WATCHDOG=1 from the server');
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(sock.messages.some((m) => m.startsWith('STOPPING=1'))).toBe(true);
  });
});

describe('watchdog withheld while unhealthy', () => {
  let gw: OpsGateway | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it('stops WATCHDOG=1 and says why in STATUS= while the store refuses writes, resumes after', async () => {
    const sock = await openNotifySocket();
    cleanups.push(() => sock.close());
    gw = await startOpsGateway({
      // A different environment from the process's: the notifier uses the systemd-notify binary with it.
      env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' },
      tune: (c) => ({ ...c, health: { ...c.health, intervalMs: 100, storeProbeSeconds: 1 } }),
    });
    await sock.waitFor((m) => m.includes('READY=1'), 5000, 'READY=1');
    await sock.waitFor((m) => m === 'WATCHDOG=1', 2000, 'a first WATCHDOG=1');
    const store = gw.daemon.store;
    if (!store) throw new Error('no store');
    await store.maintenance.setLimits({ readOnly: true }); // the store now refuses every write, as a full or read-only disk would
    await sock.waitFor((m) => m.includes('UNHEALTHY: store: write probe failed'), 4000, 'STATUS= saying the store is unwritable');
    const healthz = await getJson(`${gw.url}/healthz`);
    expect(healthz.status).toBe(503);
    expect(JSON.stringify(healthz.body)).toMatch(/store: write probe failed/);
    const mark = sock.messages.length;
    await new Promise((r) => setTimeout(r, 800));
    expect(sock.messages.slice(mark).filter((m) => m === 'WATCHDOG=1')).toHaveLength(0);
    await store.maintenance.setLimits({ readOnly: false });
    await new Promise((r) => setTimeout(r, 1200));
    expect(sock.messages.slice(mark).filter((m) => m === 'WATCHDOG=1').length).toBeGreaterThan(0);
    expect((await getJson(`${gw.url}/healthz`)).status).toBe(200);
  });
});

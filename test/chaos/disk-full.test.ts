/**
 * The gateway's store on a full disk (a 3 MB tmpfs, filled up; where mounting is not allowed, SQLite's
 * max_page_count plays the full disk). The broker stops acknowledging QoS 1 states instead of acknowledging what it
 * cannot keep, the daemon says so in its logs, /healthz and /metrics, and it recovers by itself when space returns:
 * the withheld state is PUBACKed, stored and synced.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { fastSync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { RELAXED, sleep, tempDir } from './harness.js';

const dir = tempDir('ib-chaos-disk-');
const mountPoint = join(dir.path, 'tmpfs');
mkdirSync(mountPoint);
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint], { stdio: 'ignore' });
  mounted = true;
} catch {
  mounted = false; // not root / no CAP_SYS_ADMIN: the max_page_count fallback below
}

/** Fills the disk under `path` with one file; returns it for removal. */
function fill(path: string): string {
  const file = join(path, 'filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch {
    // ENOSPC: full
  } finally {
    closeSync(fd);
  }
  return file;
}

describe(`disk full (${mounted ? 'tmpfs' : 'max_page_count'})`, () => {
  let ts: TestServer | undefined;
  let gw: TestGateway | undefined;
  afterAll(async () => {
    await gw?.close();
    await ts?.close();
    if (mounted) execFileSync('umount', [mountPoint]);
    dir.remove();
  });

  it('withholds PUBACKs, says so in logs, /healthz and /metrics, and recovers when space returns', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, done) => done(void lines.push(c.toString())) }) });
    ts = await startTestServer(RELAXED);
    const creds = await ts.addClient('home-disk');
    gw = await startTestGateway({
      dataDir: join(mountPoint, 'gw'),
      serverUrl: ts.url,
      clientId: creds.client_id,
      clientSecret: creds.client_secret,
      logger,
      tune: (c) => fastSync({ ...c, http: { ...c.http, port: 0 } }),
    });
    const g = gw;
    const device = await gw.connect('disk-dev');
    await device.publishAsync('devices/leak-1/state', JSON.stringify({ water_leak: false }), { qos: 1 });
    const store = gw.daemon.store;
    if (store === undefined) throw new Error('no store');

    let filler: string | undefined;
    if (mounted) filler = fill(mountPoint);
    else await store.maintenance.setLimits({ maxPages: store.maintenance.pageCount() });
    let acked = false;
    const big = 'x'.repeat(2000);
    const resilient = await gw.connect('disk-dev-2');
    resilient.options.reconnectPeriod = 100; // mqtt.js re-sends an unacknowledged PUBLISH after reconnecting
    const pending = resilient.publishAsync('devices/leak-2/state', JSON.stringify({ water_leak: true, note: big }), { qos: 1 }).then(() => {
      acked = true;
    });
    await waitFor(() => (g.daemon.ingest?.metrics().commitFailures ?? 0) >= 1, 10_000, 'a commit failure');
    await sleep(1000);
    expect(acked).toBe(false);
    expect(lines.some((l) => /"level":50/.test(l) && /commit/i.test(l))).toBe(true);
    const http = g.daemon.httpUrl;
    expect(http, 'the daemon serves /healthz and /metrics (http.port 0)').toBeTruthy();
    const health = await fetch(`${http}/healthz`);
    expect(health.status).toBe(503);
    expect(JSON.stringify(await health.json())).toMatch(/store.*(full|write)/i);
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(Number(/^inbetweenies_gateway_group_commit_failures_total (\d+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);

    // Space returns: no restart, no operator.
    if (filler) rmSync(filler);
    else await store.maintenance.setLimits({ maxPages: null });
    await Promise.race([pending, sleep(15_000)]);
    expect(acked).toBe(true);
    // Sync recovers too (a failed cycle on the full disk must not stop the scheduler).
    await waitFor(async () => (await ts?.server.entities('home-disk'))?.some((e) => e.entity_id === 'leak-2') ?? false, 10_000, 'leak-2 on the server');
    expect(statfsSync(mountPoint).bavail).toBeGreaterThan(0);
  }, 60_000);
});

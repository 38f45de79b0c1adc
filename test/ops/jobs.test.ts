/** Scheduled jobs: node-cron fires them, a job never overlaps itself, the three built-in jobs work. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/gateway-config.js';
import { ConfigError } from '../../src/errors.js';
import { JobRunner, maintainStore, pruneConflicts } from '../../src/daemon/jobs.js';
import { silentLogger } from '../../src/log.js';
import { openStore } from '../../src/store/index.js';
import { openStoreFile } from '../helpers/store-file.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { getJson, startOpsGateway, type OpsGateway } from './helpers.js';

const dirs: string[] = [];
let runner: JobRunner | undefined;
let gw: OpsGateway | undefined;
let server: TestServer | undefined;
afterEach(async () => {
  await runner?.stop();
  await gw?.close();
  await server?.close();
  runner = gw = server = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'ib-jobs-'));
  dirs.push(d);
  return d;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('scheduled jobs', () => {
  it('node-cron fires a job on its schedule and a slow job never overlaps itself', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    runner = new JobRunner({
      logger: silentLogger(),
      jobs: [{
        name: 'slow',
        schedule: '* * * * * *', // every second
        run: async () => {
          active += 1;
          maxActive = Math.max(maxActive, active);
          runs += 1;
          await sleep(1500);
          active -= 1;
          return {};
        },
      }],
    });
    runner.start();
    await sleep(3600);
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(maxActive).toBe(1);
    // A manual run while the scheduled one is going is skipped too.
    const during = runner.status()[0]?.running ? await runner.run('slow') : await (async () => {
      const first = runner.run('slow');
      const second = await runner.run('slow');
      await first;
      return second;
    })();
    expect(during).toEqual({ skipped: 'already running' });
    expect(maxActive).toBe(1);
    expect(runner.status()[0]?.skippedOverlaps).toBeGreaterThanOrEqual(1);
  });

  it('maintenance checkpoints the WAL and optimizes; pruning deletes only rows older than keepDays', async () => {
    const store = openStore({ path: join(tempDir(), 'gateway.db'), logger: silentLogger() });
    const db = openStoreFile(store.path, { writable: true });
    try {
      const now = Date.now();
      const insert = db.prepare("INSERT INTO conflicts (recorded_at, entity_type, entity_id, type, reason, resolution) VALUES (?, 'device', ?, 'UPDATE_UPDATE', 'r', 'server_wins')");
      insert.run(now - 100 * 86_400_000, 'old');
      insert.run(now - 10 * 86_400_000, 'recent');
      expect(await pruneConflicts(store, 90, now)).toEqual({ deleted: 1, keepDays: 90 });
      expect(db.prepare('SELECT entity_id FROM conflicts').all()).toEqual([{ entity_id: 'recent' }]);
      db.close();
      const result = await maintainStore(store);
      expect(result.checkpoint).toMatchObject({ busy: 0 });
    } finally {
      if (db.open) db.close();
      await store.close();
    }
  });

  it('the reconcile job runs a full resync through the daemon (POST /jobs/reconcile)', async () => {
    server = await startTestServer();
    const creds = await server.addClient();
    gw = await startOpsGateway({ serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret });
    await gw.daemon.syncNow();
    const res = await getJson(`${gw.url}/jobs/reconcile`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, result: { fullResync: true } });
    const jobs = (await getJson(`${gw.url}/status`)).body as { jobs: Array<{ name: string; runs: number; nextRunAt: string | null }> };
    expect(jobs.jobs.map((j) => j.name)).toEqual(['reconcile', 'maintenance', 'pruneConflicts']);
    expect(jobs.jobs[0]?.runs).toBe(1);
    expect(jobs.jobs.every((j) => j.nextRunAt !== null)).toBe(true);
  });

  it('config: job schedules are validated, every problem listed with its path', () => {
    const file = join(tempDir(), 'bad.yaml');
    writeFileSync(file, 'jobs:\n  reconcile:\n    schedule: "every sunday"\n  pruneConflicts:\n    keepDays: 0\nhealth:\n  intervalMs: 5\n');
    let err: unknown;
    try {
      loadGatewayConfig({ file });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/jobs\.reconcile\.schedule.*cron expression/);
    expect(problems).toMatch(/jobs\.pruneConflicts\.keepDays/);
    expect(problems).toMatch(/health\.intervalMs/);
    const c = loadGatewayConfig({ file: 'config/gateway.example.yaml' });
    expect(c.jobs.reconcile.schedule).toBe('30 3 * * 0');
    expect(c.http.port).toBe(9180);
  });
});

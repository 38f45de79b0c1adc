/**
 * `npm run bench:server -- --database-url URL` (that database) or `-- --pg` (a private cluster started here, fsync
 * on; `npm run bench:server-pg`): the server over HTTP on SQLite and on PostgreSQL in the same run, SQLite being the
 * baseline. One line per figure, `name: value unit`; nothing fails on timing.
 *   store.<sqlite|postgres>.<mode>.push / .pull / .cycle_median: bench/server.ts's figures (10,000 changes pushed in
 *     pushes of 1000 and pulled in pages of 1000; a typical home's request + push of 20 + ack), median of runs
 *   instances.<1|2>: server processes (`server --database-url`) on one database, 8 homes cycling at once, each
 *     home's client on instance (home mod N): cycles/s and cycle p50 / p99 (the SQLite line is one process)
 *   wake_cross_instance: a live wait held on process A, an app's push on process B: push sent → wait answered, p50/p99
 * The 10,000 homes × 100 entities figures are bench:store's (below HTTP, same stores).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { PgStore } from '../src/server/pg/store.js';
import { ServerStore } from '../src/server/store/index.js';
import { startPgCluster, type PgCluster } from '../test/helpers/pg-cluster.js';
import { spawnServer, type ServerProcess } from '../test/helpers/server-process.js';
import { figure, median, percentile } from './lib.js';
import type { Mode } from './server.js';

export type StoreTarget = { readonly kind: 'url'; readonly url: string } | { readonly kind: 'cluster' };

/** `--database-url URL` or `--pg`; undefined: the SQLite-only bench. */
export function storeTarget(args: readonly string[]): StoreTarget | undefined {
  const i = args.indexOf('--database-url');
  const url = i >= 0 ? args[i + 1] : undefined;
  if (url !== undefined) return { kind: 'url', url };
  return args.includes('--pg') ? { kind: 'cluster' } : undefined;
}

const COMPARED: readonly Mode[] = [
  { name: 'plain', gzip: false, hmac: false },
  { name: 'gzip+hmac', gzip: true, hmac: true },
  { name: 'caps', gzip: false, hmac: false, caps: true },
];
const REPS = Number(process.env.BENCH_REPS ?? 3);
const HOMES_AT_ONCE = 8;
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 8);
const WAKES = 60;

type RunMode = (mode: Mode, databaseUrl?: string) => Promise<Record<string, number>>;

interface Database {
  fresh(): Promise<string>;
  stop(): Promise<void>;
}

async function database(target: StoreTarget): Promise<Database> {
  if (target.kind === 'url') return { fresh: async () => target.url, stop: async () => undefined };
  const cluster: PgCluster = await startPgCluster();
  return { fresh: () => cluster.createDatabase('bench'), stop: () => cluster.stop() };
}

async function post(pool: Pool, path: string, body: unknown, token?: string): Promise<any> {
  const res = await pool.request({
    path,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const json: any = await res.body.json();
  if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode} ${JSON.stringify(json)}`);
  return json;
}

interface Client {
  readonly pool: Pool;
  readonly id: string;
  readonly token: string;
}

/** A credential through one instance's HTTP API, logged in (the token works on every instance). */
async function client(pool: Pool, creds: { client_id: string; client_secret: string }): Promise<Client> {
  const tokens = await post(pool, '/api/v1/auth/token', { client_id: creds.client_id, client_secret: creds.client_secret });
  return { pool, id: creds.client_id, token: tokens.access_token };
}

function change(i: number, at: string, tag: string): Record<string, unknown> {
  return {
    entity_type: 'entity_state',
    entity_id: `dev-${i}`,
    operation: 'update',
    data: { device_id: `dev-${i}`, state: { on: i % 2 === 0, level: i } },
    updated_at: at,
    sync_id: `${tag}-${i}`,
    client_sync_id: `${tag}-${i}-${Math.random().toString(36).slice(2)}`,
  };
}

/** A figure is only worth something when every change was written: anything else stops the bench. */
function applied(result: { applied: Array<{ status: string; error?: unknown }> }): void {
  const bad = result.applied.find((a) => a.status !== 'applied');
  if (bad !== undefined) throw new Error(`bench push not applied: ${JSON.stringify(bad)}`);
}

/** One home's cycles (request, push of 20, ack) until `until`; returns each cycle's ms. */
async function cycleHome(c: Client, until: number, tag: string): Promise<number[]> {
  applied(await post(c.pool, '/api/v1/sync/push', { type: 'sync_push', client_id: c.id, changes: Array.from({ length: 50 }, (_, i) => change(i, new Date().toISOString(), `${tag}-a-seed`)) }, c.token));
  let lastSync: string = (await post(c.pool, '/api/v1/sync/request', { type: 'sync_request', client_id: c.id, last_sync: null }, c.token)).server_time;
  const times: number[] = [];
  for (let n = 0; performance.now() < until; n++) {
    const started = performance.now();
    const delta = await post(c.pool, '/api/v1/sync/request', { type: 'sync_request', client_id: c.id, last_sync: lastSync }, c.token);
    const at = new Date().toISOString();
    const changes = Array.from({ length: 20 }, (_, k) => change((n * 20 + k) % 50, at, `${tag}-c${String(n).padStart(6, '0')}`));
    applied(await post(c.pool, '/api/v1/sync/push', { type: 'sync_push', client_id: c.id, changes }, c.token));
    await post(c.pool, '/api/v1/sync/ack', { type: 'sync_ack', client_id: c.id, sync_completed_at: delta.server_time }, c.token);
    lastSync = delta.server_time;
    times.push(performance.now() - started);
  }
  return times;
}

async function spawnAll(n: number, databaseUrl: string | undefined, dir: string): Promise<ServerProcess[]> {
  const config = 'rateLimit: { ratePerSecond: 1000000, burst: 1000000 }\nlog: { level: info }\n';
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      spawnServer({ dataDir: join(dir, `s${i}`), configYaml: config, ...(databaseUrl === undefined ? {} : { databaseUrl }) }),
    ),
  );
}

/** `n` server processes on one store; HOMES_AT_ONCE homes cycling for LOAD_SECONDS, home i on instance i mod n. */
type AddClient = (home: string) => Promise<{ client_id: string; client_secret: string }>;

async function instances(label: string, n: number, databaseUrl: string | undefined, addClient: AddClient, sqliteDir?: string): Promise<void> {
  const dir = sqliteDir ?? mkdtempSync(join(tmpdir(), 'ib-bench-inst-'));
  const servers = await spawnAll(n, databaseUrl, dir);
  const pools = servers.map((s) => new Pool(s.url, { connections: 4 }));
  try {
    const clients = await Promise.all(
      Array.from({ length: HOMES_AT_ONCE }, async (_, i) => client(pools[i % n] as Pool, await addClient(`${label}-home-${i}`))),
    );
    const until = performance.now() + LOAD_SECONDS * 1000;
    const t0 = performance.now();
    const all = (await Promise.all(clients.map((c, i) => cycleHome(c, until, `${label}-${i}`)))).flat();
    const seconds = (performance.now() - t0) / 1000;
    figure(`instances.${label}.cycles_per_s`, Math.round(all.length / seconds), 'cycles/s', 0);
    figure(`instances.${label}.cycle_p50`, median(all), 'ms');
    figure(`instances.${label}.cycle_p99`, percentile(all, 99), 'ms');
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A live wait held on A, an app's push through B: push sent → held wait answered. */
async function wake(databaseUrl: string, addClient: AddClient): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ib-bench-wake-'));
  const servers = await spawnAll(2, databaseUrl, dir);
  const [a, b] = servers.map((s) => new Pool(s.url, { connections: 2 })) as [Pool, Pool];
  try {
    const gw = await client(a, await addClient('wake-home'));
    const app = await client(b, await addClient('wake-home'));
    let w: string = (await post(a, '/api/v1/sync/request', { type: 'sync_request', client_id: gw.id, last_sync: null }, gw.token)).server_time;
    const latencies: number[] = [];
    for (let i = 0; i < WAKES; i++) {
      const held = post(a, '/api/v1/sync/request', { type: 'sync_request', client_id: gw.id, last_sync: w, wait: 20 }, gw.token);
      await new Promise((r) => setTimeout(r, 60)); // held by now
      const sent = performance.now();
      const answered = held.then(() => performance.now());
      applied(await post(b, '/api/v1/sync/push', { type: 'sync_push', client_id: app.id, changes: [change(i, new Date().toISOString(), `wake-${i}`)] }, app.token));
      latencies.push((await answered) - sent);
      w = (await held).server_time;
    }
    figure('wake_cross_instance.p50', median(latencies), 'ms');
    figure('wake_cross_instance.p99', percentile(latencies, 99), 'ms');
  } finally {
    await Promise.all([a.close(), b.close()]);
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `fn` with a way to make credentials in the database (as `server add-client --database-url` does). */
async function withPgClients(url: string, fn: (add: AddClient) => Promise<void>): Promise<void> {
  const store = await PgStore.open({ url, clock: Date.now });
  try {
    await fn((home) => store.addClient(home));
  } finally {
    await store.close();
  }
}

export async function storeFigures(target: StoreTarget, runMode: RunMode): Promise<void> {
  const db = await database(target);
  try {
    const only = process.env.BENCH_ONLY; // stores | instances | wake: one section (investigating)
    if (only === undefined || only === 'stores') await storeSection(runMode, db);
    if (only === undefined || only === 'instances') await instancesSection(db);
    if (only === undefined || only === 'wake') {
      const wakeUrl = await db.fresh();
      await withPgClients(wakeUrl, (add) => wake(wakeUrl, add));
    }
    console.log(`# load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await db.stop();
  }
}

async function storeSection(runMode: RunMode, db: Database): Promise<void> {
  {
    console.log(`# stores side by side over HTTP; ${REPS} runs per store and mode, median; load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const results = new Map<string, Record<string, number>[]>();
    await runMode(COMPARED[0] as Mode); // warms the server code in this thread
    for (let rep = 0; rep < REPS; rep++) {
      for (const store of rep % 2 === 0 ? ['sqlite', 'postgres'] : ['postgres', 'sqlite']) {
        for (const mode of COMPARED) {
          const url = store === 'postgres' ? await db.fresh() : undefined;
          const key = `${store}.${mode.name}`;
          results.set(key, [...(results.get(key) ?? []), await runMode(mode, url)]);
        }
      }
    }
    for (const [key, list] of results) {
      figure(`store.${key}.push`, Math.round(median(list.map((r) => r.push ?? 0))), 'changes/s', 0);
      figure(`store.${key}.pull`, Math.round(median(list.map((r) => r.pull ?? 0))), 'changes/s', 0);
      figure(`store.${key}.cycle_median`, median(list.map((r) => r.cycle ?? 0)), 'ms');
    }
    for (const mode of COMPARED) {
      const s = results.get(`sqlite.${mode.name}`) ?? [];
      const p = results.get(`postgres.${mode.name}`) ?? [];
      for (const k of ['push', 'pull', 'cycle'] as const) {
        const ratio = median(p.map((r) => r[k] ?? 0)) / (median(s.map((r) => r[k] ?? 0)) || 1);
        figure(`store.postgres/sqlite.${mode.name}.${k}`, ratio, 'ratio');
      }
    }

  }
}

async function instancesSection(db: Database): Promise<void> {
  {
    console.log(`# ${HOMES_AT_ONCE} homes cycling for ${LOAD_SECONDS} s through server processes; load average: ${loadavg()[0]?.toFixed(2)}`);
    // SQLite: one process (the only way it runs); credentials written into its file before it starts
    const sqliteDir = mkdtempSync(join(tmpdir(), 'ib-bench-sqlite-'));
    const local = new ServerStore({ dataDir: join(sqliteDir, 's0'), clock: Date.now });
    const creds = new Map(Array.from({ length: HOMES_AT_ONCE }, (_, i) => [`sqlite.1-home-${i}`, local.accounts.addClient(`sqlite.1-home-${i}`)]));
    local.close();
    await instances('sqlite.1', 1, undefined, async (home) => {
      const c = creds.get(home);
      if (c === undefined) throw new Error(`no credential for ${home}`);
      return c;
    }, sqliteDir);
    for (const n of [1, 2]) {
      const url = await db.fresh();
      await withPgClients(url, (add) => instances(`postgres.${n}`, n, url, add));
    }
  }
}

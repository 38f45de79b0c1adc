/**
 * Sync server benchmark (`npm run bench:server`): push and pull throughput for 10,000 changes (pushes of 1000, pages
 * of 1000) and the median latency of a typical-home cycle (sync_request + sync_push of 20 changes + sync_ack), in
 * five modes in the same run — plain, gzip, hmac, gzip+hmac, and caps (plain with the digest in every delta) — with
 * ratios against plain. One line per figure:
 * `name: value unit`. The server runs in the main thread, the clients in a worker thread. Goals: >= 30,000
 * changes/s push, >= 50,000/s pull, cycle < 5 ms median. With `--database-url URL` or `--pg` it compares the stores
 * instead: SQLite and PostgreSQL in the same run (bench/server-stores.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Pool } from 'undici';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { silentLogger } from '../src/log.js';
import { newNonce, signRequest } from '../src/protocol/index.js';
import { openSyncServer, parseServerConfig, type ClientCredentials } from '../src/server/index.js';
import { storeFigures, storeTarget } from './server-stores.js';

export interface Mode {
  readonly name: string;
  readonly gzip: boolean;
  readonly hmac: boolean;
  /** The typical cycle's requests announce `caps: ["partial","digest"]`: every delta carries the home's digest. */
  readonly caps?: boolean;
}

export const MODES: readonly Mode[] = [
  { name: 'plain', gzip: false, hmac: false },
  { name: 'gzip', gzip: true, hmac: false },
  { name: 'hmac', gzip: false, hmac: true },
  { name: 'gzip+hmac', gzip: true, hmac: true },
  { name: 'caps', gzip: false, hmac: false, caps: true },
];
const TOTAL = 10_000;
const BATCH = 1000;
const CYCLES = 200;

class BenchClient {
  token = '';
  constructor(
    private readonly pool: Pool,
    readonly creds: ClientCredentials,
    private readonly mode: Mode,
  ) {}

  async call(path: string, body: unknown, auth = true): Promise<any> {
    let bytes = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.mode.gzip) {
      headers['accept-encoding'] = 'gzip';
      if (bytes.length > 1024) {
        bytes = gzipSync(bytes, { level: 6 });
        headers['content-encoding'] = 'gzip';
      }
    }
    if (auth) headers.authorization = `Bearer ${this.token}`;
    if (this.mode.hmac) {
      Object.assign(
        headers,
        signRequest({
          secret: this.creds.client_secret,
          method: 'POST',
          path,
          clientId: this.creds.client_id,
          body: bytes,
          timestampSeconds: Math.floor(Date.now() / 1000),
          nonce: newNonce(),
        }),
      );
    }
    const res = await this.pool.request({ path, method: 'POST', headers, body: bytes });
    const raw = Buffer.from(await res.body.arrayBuffer());
    const text = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
    if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode} ${text}`);
    return JSON.parse(text);
  }

  async login(): Promise<void> {
    const res = await this.call('/api/v1/auth/token', { client_id: this.creds.client_id, client_secret: this.creds.client_secret }, false);
    this.token = res.access_token;
  }
}

function change(i: number, at: string, tag: string): Record<string, unknown> {
  const kind = i % 3;
  const base = { entity_id: `e-${i}`, operation: 'update', updated_at: at, client_sync_id: `${tag}-${i}` };
  if (kind === 0) return { ...base, entity_type: 'entity_state', data: { device_id: `d-${i}`, state: { power: 'on', level: i % 100, temp: 21.5 } } };
  if (kind === 1) return { ...base, entity_type: 'device', data: { name: `Device ${i}`, room_id: `r-${i % 10}`, device_type: 'light', manufacturer: 'Acme' } };
  return { ...base, entity_type: 'room', data: { name: `Room ${i}`, floor: 1 } };
}

/** CPU seconds (user + system) of this process since `start`: client and server share the process. */
function cpuSeconds(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

interface LoadInput {
  readonly url: string;
  readonly mode: Mode;
  readonly creds: { pusher: ClientCredentials; puller: ClientCredentials; warm: ClientCredentials; typical: ClientCredentials };
}

/**
 * One mode: the server runs in the main thread; the load (the clients) runs in a worker thread, as separate
 * machines would, so client-side JSON and gzip work does not run on the server's event loop.
 */
let runs = 0;

export async function runMode(mode: Mode, databaseUrl?: string): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ib-bench-'));
  const config = parseServerConfig({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    ...(databaseUrl === undefined ? {} : { database: { url: databaseUrl } }),
    hmac: { required: mode.hmac },
    rateLimit: { ratePerSecond: 1e9, burst: 1e9 },
    log: { level: 'silent' },
  });
  const server = await openSyncServer({ config, logger: silentLogger() });
  const { url } = await server.listen();
  // homes of their own per run (a given database is reused across runs)
  const run = (runs += 1);
  try {
    const input: LoadInput = {
      url,
      mode,
      creds: {
        pusher: await server.addClient(`bench-home-${run}`),
        puller: await server.addClient(`bench-home-${run}`),
        warm: await server.addClient(`warm-home-${run}`),
        typical: await server.addClient(`typical-home-${run}`),
      },
    };
    const worker = new Worker(new URL(import.meta.url), { workerData: input });
    return await new Promise<Record<string, number>>((resolve, reject) => {
      worker.once('message', (m: Record<string, number>) => resolve(m));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`load worker exited with ${code}`)));
    });
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The client side of one mode (worker thread): warm-up, push and pull throughput, typical cycles. */
async function clientLoad(input: LoadInput): Promise<Record<string, number>> {
  const { mode, creds } = input;
  const pool = new Pool(input.url, { connections: 4, pipelining: 1 });
  try {
    const pusher = new BenchClient(pool, creds.pusher, mode);
    const puller = new BenchClient(pool, creds.puller, mode);
    await pusher.login();
    await puller.login();
    // warm-up (JIT, statement cache) in another home: a long-running server is measured, not a cold start
    const warm = new BenchClient(pool, creds.warm, mode);
    await warm.login();
    for (let round = 0; round < 5; round++) {
      const changes = Array.from({ length: BATCH }, (_, i) => change(round * BATCH + i, new Date().toISOString(), `w${round}`));
      await warm.call('/api/v1/sync/push', { type: 'sync_push', client_id: warm.creds.client_id, changes });
      await pullAll(warm);
    }

    const at = new Date().toISOString();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < TOTAL; i += BATCH) {
      const changes = Array.from({ length: BATCH }, (_, k) => change(i + k, at, 'p'));
      const res = await pusher.call('/api/v1/sync/push', { type: 'sync_push', client_id: pusher.creds.client_id, changes });
      if (res.applied.length !== BATCH) throw new Error('push incomplete');
    }
    const pushSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const pushCpu = cpuSeconds(cpu0);

    const cpu1 = process.cpuUsage();
    const t1 = process.hrtime.bigint();
    const pulled = await pullAll(puller);
    const pullSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    const pullCpu = cpuSeconds(cpu1);
    if (pulled !== TOTAL) throw new Error(`pulled ${pulled}`);

    const cycleMs = await typicalCycles(pool, creds.typical, mode);
    return { push: TOTAL / pushSeconds, pull: TOTAL / pullSeconds, cycle: cycleMs, pushCpu: TOTAL / pushCpu, pullCpu: TOTAL / pullCpu };
  } finally {
    await pool.close();
  }
}

/** A full sync, every page; returns the number of changes received. */
async function pullAll(c: BenchClient): Promise<number> {
  let pulled = 0;
  let cursor: string | null = null;
  for (;;) {
    const res: any = await c.call('/api/v1/sync/request', { type: 'sync_request', client_id: c.creds.client_id, last_sync: null, ...(cursor ? { cursor } : {}) });
    pulled += res.changes.length;
    if (!res.more) return pulled;
    cursor = res.cursor;
  }
}

/** A typical home: 50 entities; each cycle is request + push of 20 changes + ack. Returns the median ms. */
async function typicalCycles(pool: Pool, creds: ClientCredentials, mode: Mode): Promise<number> {
  const c = new BenchClient(pool, creds, mode);
  await c.login();
  const seed = Array.from({ length: 50 }, (_, i) => change(i, new Date().toISOString(), 'a-seed'));
  await c.call('/api/v1/sync/push', { type: 'sync_push', client_id: creds.client_id, changes: seed });
  let lastSync: string | null = (await c.call('/api/v1/sync/request', { type: 'sync_request', client_id: creds.client_id, last_sync: null })).server_time;
  const times: number[] = [];
  for (let n = 0; n < CYCLES + 20; n++) {
    const start = process.hrtime.bigint();
    const caps = mode.caps === true ? { caps: ['partial', 'digest'] } : {};
    const delta = await c.call('/api/v1/sync/request', { type: 'sync_request', client_id: creds.client_id, last_sync: lastSync, ...caps });
    if (mode.caps === true && typeof delta.digest !== 'string') throw new Error('typical cycle: caps asked, no digest');
    const at = new Date().toISOString();
    const changes = Array.from({ length: 20 }, (_, k) => change((n * 20 + k) % 50, at, `c${String(n).padStart(6, '0')}`));
    const result = await c.call('/api/v1/sync/push', { type: 'sync_push', client_id: creds.client_id, changes });
    if (result.conflicts.length > 0) throw new Error('typical cycle: unexpected conflict (sync ids must increase)');
    await c.call('/api/v1/sync/ack', { type: 'sync_ack', client_id: creds.client_id, sync_completed_at: delta.server_time });
    lastSync = delta.server_time;
    if (n >= 20) times.push(Number(process.hrtime.bigint() - start) / 1e6); // first 20 are warm-up
  }
  return median(times);
}

/** Modes run interleaved REPS times (the machine is shared: interleaving spreads background load fairly). */
const REPS = Number(process.env.BENCH_REPS ?? 4);

async function main(): Promise<void> {
  // `--database-url URL` or `--pg` (a private cluster): the stores side by side instead (bench/server-stores.ts)
  const target = storeTarget(process.argv.slice(2));
  if (target !== undefined) {
    await storeFigures(target, runMode);
    return;
  }
  const runs = new Map<string, Record<string, number>[]>(MODES.map((m) => [m.name, []]));
  await runMode(MODES[0] as Mode); // discarded: warms the server code in this thread
  for (let rep = 0; rep < REPS; rep++) {
    // rotate the order so no mode always runs first after the previous server's teardown
    for (let k = 0; k < MODES.length; k++) {
      const mode = MODES[(rep + k) % MODES.length] as Mode;
      runs.get(mode.name)?.push(await runMode(mode));
    }
  }
  const results = new Map<string, Record<string, number>>();
  for (const [name, list] of runs) {
    results.set(name, {
      push: median(list.map((r) => r.push ?? 0)),
      pull: median(list.map((r) => r.pull ?? 0)),
      cycle: median(list.map((r) => r.cycle ?? 0)),
      pushCpu: median(list.map((r) => r.pushCpu ?? 0)),
      pullCpu: median(list.map((r) => r.pullCpu ?? 0)),
    });
  }
  console.log(`runs: ${REPS} per mode, median of runs; load average at start: ${loadavg()[0]?.toFixed(2)}`);
  const plain = results.get('plain');
  for (const [name, r] of results) {
    console.log(`push.${name}: ${Math.round(r.push ?? 0)} changes/s`);
    console.log(`pull.${name}: ${Math.round(r.pull ?? 0)} changes/s`);
    console.log(`cycle_median.${name}: ${(r.cycle ?? 0).toFixed(2)} ms`);
    // Throughput per CPU-second of the whole process (client worker + server): insensitive to other load.
    console.log(`push_per_cpu_s.${name}: ${Math.round(r.pushCpu ?? 0)} changes/cpu-s`);
    console.log(`pull_per_cpu_s.${name}: ${Math.round(r.pullCpu ?? 0)} changes/cpu-s`);
  }
  if (plain) {
    for (const [name, r] of results) {
      if (name === 'plain') continue;
      console.log(`push.${name}/plain: ${((r.push ?? 0) / (plain.push ?? 1)).toFixed(2)} ratio`);
      console.log(`pull.${name}/plain: ${((r.pull ?? 0) / (plain.pull ?? 1)).toFixed(2)} ratio`);
      console.log(`cycle_median.${name}/plain: ${((r.cycle ?? 0) / (plain.cycle ?? 1)).toFixed(2)} ratio`);
    }
  }
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  clientLoad(workerData as LoadInput).then(
    (result) => parentPort?.postMessage(result),
    (err: unknown) => {
      throw err;
    },
  );
}

/**
 * Server capacity for live waits (`npm run bench:latency`, section "server capacity"): N simulated gateways, each in
 * its own home, each holding one live wait on its own connection to ONE server process (a child, so its RSS is its
 * own); then an app changes one entity in every home at once. Figures per N:
 *   - RSS and V8 heap per held wait: (after opening N waits − before) / N, both after a full GC in the child;
 *   - wake latency after commit: when the gateway received its answer − the commit time of its home's change (the
 *     push's server_time, which is the commit's sequence in µs on the same wall clock), p50 / p99 / max;
 *   - app push → gateway: from the moment all N pushes were issued to each answer (includes the server's queue of N
 *     fsynced pushes: the time for a change in every home to reach every home);
 * with a same-run baseline: an ordinary sync_request round trip (no wait) on the same server while the N waits are
 * held. Loopback only; every stage has a deadline; nothing fails on timing.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Pool } from 'undici';
import { newNonce, parseTimestamp, signRequest } from '../src/protocol/index.js';
import type { BenchClient, BenchHome, FromChild, ToChild } from './latency-server.js';
import { figure, percentile, sleep, unitNodeFlags } from './lib.js';

const REQUEST_PATH = '/api/v1/sync/request';
/** The bare baseline server answers this path at once (its warm-up) and holds every other request. */
const WARM_PATH = '/warm';
const PUSH_PATH = '/api/v1/sync/push';
/** Waits opened at once: below the listen backlog (511), so no SYN is dropped and retried a second later. */
const OPEN_BATCH = 400;
const PUSH_CONNECTIONS = 32;
const ROUND_TRIPS = 200;
const MAX_WAIT_SECONDS = 300;
const now = (): number => performance.timeOrigin + performance.now();

export interface CapacityOptions {
  readonly sizes: readonly number[];
}

/** The soft limit of open files of this process (children inherit it), from /proc/self/limits. */
function openFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

function signed(client: BenchClient, path: string, body: Buffer): Record<string, string> {
  const sig = signRequest({
    secret: client.secret,
    method: 'POST',
    path,
    clientId: client.clientId,
    body,
    timestampSeconds: Math.floor(Date.now() / 1000),
    nonce: newNonce(),
  });
  return { 'content-type': 'application/json', authorization: `Bearer ${client.token}`, ...sig };
}

class Child {
  private readonly proc: ChildProcess;
  private readonly waiting: ((m: FromChild) => void)[] = [];

  constructor() {
    const execArgv = [...unitNodeFlags(join(import.meta.dirname, '../../systemd/inbetweenies-server.service')), '--expose-gc'];
    this.proc = fork(join(import.meta.dirname, 'latency-server.js'), [], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.proc.on('message', (m: FromChild) => this.waiting.shift()?.(m));
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  ask<K extends FromChild['kind']>(message: ToChild, kind: K, timeoutMs: number): Promise<Extract<FromChild, { kind: K }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench server: no ${kind} answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((m) => {
        clearTimeout(timer);
        if (m.kind === kind) resolve(m as Extract<FromChild, { kind: K }>);
        else reject(new Error(`bench server answered ${m.kind}, expected ${kind}`));
      });
      this.proc.send(message);
    });
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

interface HeldWait {
  /** Epoch ms (sub-ms) when the answer was complete; 0 until then. */
  receivedAt: number;
  status: number;
  body: string;
}

/** One live wait held on its own connection: sync_request from a null watermark (the home is empty: held). */
function openWait(url: URL, home: BenchHome, agent: Agent): HeldWait {
  const held: HeldWait = { receivedAt: 0, status: 0, body: '' };
  const body = Buffer.from(JSON.stringify({ type: 'sync_request', client_id: home.gateway.clientId, last_sync: null, wait: MAX_WAIT_SECONDS }));
  const req = request({ host: url.hostname, port: url.port, method: 'POST', path: REQUEST_PATH, agent, headers: signed(home.gateway, REQUEST_PATH, body) }, (res: IncomingMessage) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      held.receivedAt = now();
      held.status = res.statusCode ?? 0;
      held.body = Buffer.concat(chunks).toString('utf8');
    });
  });
  req.on('error', (err) => {
    held.receivedAt = now();
    held.body = `transport error: ${err.message}`;
  });
  req.end(body);
  return held;
}

/** Opens one request per home, OPEN_BATCH at a time, each batch held by the child before the next. */
async function openAll(child: Child, homes: readonly BenchHome[], open: (home: BenchHome) => void): Promise<void> {
  const base = (await child.ask({ cmd: 'held' }, 'held', 30_000)).held;
  for (let i = 0; i < homes.length; i += OPEN_BATCH) {
    const batch = homes.slice(i, i + OPEN_BATCH);
    batch.forEach(open);
    const target = base + i + batch.length;
    await until(async () => (await child.ask({ cmd: 'held' }, 'held', 30_000)).held >= target, 120_000, `${target} held requests`);
  }
}

/**
 * Same-run baseline for memory: a bare node:http server holding the same N requests (same headers and bodies), so
 * the figures above can be read as Node's own cost per held request plus this project's.
 */
async function runBareBaseline(n: number, homes: readonly BenchHome[]): Promise<void> {
  const child = new Child();
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  try {
    const { url } = await child.ask({ cmd: 'setup-bare' }, 'ready-bare', 60_000);
    const target = new URL(url);
    const pool = new Pool(url, { connections: PUSH_CONNECTIONS });
    const first = homes[0];
    if (first === undefined) throw new Error('no homes for the baseline');
    await warmUp(pool, first.gateway, WARM_PATH); // answered at once
    await pool.close();
    const before = await child.ask({ cmd: 'memory' }, 'memory', 60_000);
    await openAll(child, homes.slice(0, n), (home) => openWait(target, home, agent));
    const after = await child.ask({ cmd: 'memory' }, 'memory', 60_000);
    figure(`live_${n}_baseline_bare_http_rss_per_request`, (after.rssBytes - before.rssBytes) / n / 1024, 'KiB');
    figure(`live_${n}_baseline_bare_http_heap_per_request`, (after.heapUsedBytes - before.heapUsedBytes) / n / 1024, 'KiB');
  } finally {
    agent.destroy();
    await child.ask({ cmd: 'stop' }, 'stopped', 30_000).catch(() => undefined);
    child.kill();
  }
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function post(pool: Pool, client: BenchClient, path: string, value: unknown): Promise<{ status: number; json: { server_time?: string } }> {
  const body = Buffer.from(JSON.stringify(value));
  const res = await pool.request({ method: 'POST', path, headers: signed(client, path, body), body });
  const text = await res.body.text();
  return { status: res.statusCode, json: JSON.parse(text) as { server_time?: string } };
}

/** A server timestamp as epoch ms (sub-ms). */
function serverMs(timestamp: string): number {
  const micros = parseTimestamp(timestamp);
  if (micros === undefined) throw new Error(`server_time ${JSON.stringify(timestamp)} is not a timestamp`);
  return micros / 1000;
}

async function plainRoundTrips(pool: Pool, client: BenchClient): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const started = now();
    const res = await post(pool, client, REQUEST_PATH, { type: 'sync_request', client_id: client.clientId, last_sync: null });
    if (res.status !== 200) throw new Error(`plain sync_request answered ${res.status}`);
    times.push(now() - started);
  }
  return times;
}

/**
 * Brings the server to the steady state of a busy process before the "before" figure (JIT, SQLite page cache, V8's
 * young generation, which grows once under load and stays): a burst of plain requests by one client, so that the
 * state each gateway client adds (its rate-limit bucket, its nonce cache) still counts as the cost of its wait.
 */
async function warmUp(pool: Pool, client: BenchClient, path = REQUEST_PATH): Promise<void> {
  const request = { type: 'sync_request', client_id: client.clientId, last_sync: null };
  for (let round = 0; round < 10; round++) {
    await Promise.all(Array.from({ length: 400 }, () => post(pool, client, path, request)));
  }
}

/** One change in every home at once: N pushes issued together through the app's pool; the commit time of each. */
async function changeEveryHome(pool: Pool, homes: readonly BenchHome[]): Promise<{ issuedAt: number; commits: number[]; pushSeconds: number }> {
  const issuedAt = now();
  const commits = await Promise.all(
    homes.map(async (home) => {
      const change = {
        entity_type: 'entity_state',
        entity_id: 'plug-1',
        operation: 'update',
        data: { device_id: 'plug-1', state: { power: 'on' } },
        updated_at: new Date().toISOString(),
        client_sync_id: newNonce(),
      };
      const res = await post(pool, home.app, PUSH_PATH, { type: 'sync_push', client_id: home.app.clientId, changes: [change] });
      if (res.status !== 200 || res.json.server_time === undefined) throw new Error(`push answered ${res.status}`);
      return serverMs(res.json.server_time);
    }),
  );
  return { issuedAt, commits, pushSeconds: (now() - issuedAt) / 1000 };
}

interface WakeFigures {
  readonly afterCommit: number[];
  readonly fromIssue: number[];
  /** Answers that are not a 200 woken by the change with that change in it. */
  readonly wrong: number;
}

function wakeFigures(waits: readonly HeldWait[], commits: readonly number[], issuedAt: number): WakeFigures {
  const afterCommit: number[] = [];
  const fromIssue: number[] = [];
  let wrong = 0;
  waits.forEach((w, i) => {
    const delta = w.status === 200 ? (JSON.parse(w.body) as { changes: { entity_id: string }[]; live?: { reason: string } }) : undefined;
    if (delta?.live?.reason !== 'change' || delta.changes[0]?.entity_id !== 'plug-1') wrong += 1;
    afterCommit.push(w.receivedAt - (commits[i] ?? 0));
    fromIssue.push(w.receivedAt - issuedAt);
  });
  return { afterCommit, fromIssue, wrong };
}

async function runSize(n: number): Promise<BenchHome[]> {
  const child = new Child();
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  let pool: Pool | undefined;
  try {
    const { url, homes } = await child.ask({ cmd: 'setup', homes: n + 1, maxWaitSeconds: MAX_WAIT_SECONDS }, 'ready', 120_000);
    const probe = homes.pop(); // a home of its own for the baseline round trips
    if (probe === undefined) throw new Error('bench server created no homes');
    const target = new URL(url);
    pool = new Pool(url, { connections: PUSH_CONNECTIONS });
    await warmUp(pool, probe.gateway);
    const before = await child.ask({ cmd: 'memory' }, 'memory', 60_000);
    const opening = now();
    const waits: HeldWait[] = [];
    await openAll(child, homes, (home) => waits.push(openWait(target, home, agent)));
    const openSeconds = (now() - opening) / 1000;
    const after = await child.ask({ cmd: 'memory' }, 'memory', 60_000);
    const early = waits.filter((w) => w.receivedAt !== 0).length;
    const baseline = await plainRoundTrips(pool, probe.gateway);
    const { issuedAt, commits, pushSeconds } = await changeEveryHome(pool, homes);
    await until(() => waits.every((w) => w.receivedAt !== 0), MAX_WAIT_SECONDS * 1000, 'every wait to be answered');
    const wake = wakeFigures(waits, commits, issuedAt);
    figure(`live_${n}_held`, after.held, 'waits');
    figure(`live_${n}_open_time`, openSeconds, 's');
    figure(`live_${n}_server_rss_idle`, before.rssBytes / 2 ** 20, 'MiB');
    figure(`live_${n}_server_rss_held`, after.rssBytes / 2 ** 20, 'MiB');
    figure(`live_${n}_rss_per_wait`, (after.rssBytes - before.rssBytes) / n / 1024, 'KiB');
    figure(`live_${n}_heap_per_wait`, (after.heapUsedBytes - before.heapUsedBytes) / n / 1024, 'KiB');
    figure(`live_${n}_baseline_round_trip_p50`, percentile(baseline, 50), 'ms');
    figure(`live_${n}_baseline_round_trip_p99`, percentile(baseline, 99), 'ms');
    figure(`live_${n}_wake_after_commit_p50`, percentile(wake.afterCommit, 50), 'ms');
    figure(`live_${n}_wake_after_commit_p99`, percentile(wake.afterCommit, 99), 'ms');
    figure(`live_${n}_wake_after_commit_max`, Math.max(...wake.afterCommit), 'ms');
    figure(`live_${n}_app_push_to_gateway_p50`, percentile(wake.fromIssue, 50), 'ms');
    figure(`live_${n}_app_push_to_gateway_p99`, percentile(wake.fromIssue, 99), 'ms');
    figure(`live_${n}_pushes_per_second`, n / pushSeconds, 'pushes/s', 0);
    figure(`live_${n}_answered_early_or_wrong`, early + wake.wrong, 'waits');
    return homes;
  } finally {
    await pool?.close();
    agent.destroy();
    await child.ask({ cmd: 'stop' }, 'stopped', 30_000).catch(() => undefined);
    child.kill();
  }
}

export async function runCapacityBench(options: CapacityOptions): Promise<void> {
  const limit = openFileLimit();
  for (const n of options.sizes) {
    const needed = n + PUSH_CONNECTIONS + 256;
    if (needed > limit) {
      process.stdout.write(`# live_${n}: skipped: needs about ${needed} open files per process, the limit is ${limit} (ulimit -n ${needed})\n`);
      continue;
    }
    const homes = await runSize(n);
    await runBareBaseline(n, homes);
  }
}

/**
 * `npm run bench:store`: the server's two stores side by side, below HTTP — PostgreSQL (a private cluster started
 * here, fsync on) and SQLite as the baseline, in the same run: the figures of the stores themselves (JSON, HMAC and
 * HTTP costs come on top and are the same for both; `bench:server -- --pg` has them over HTTP). One line per figure, `name: value unit`; nothing fails on timing.
 *   push / pull: 10,000 changes in pushes of 1000, pulled in pages of 1000 (a full sync), median of runs
 *   cycle: a typical home's cycle (open sync + page + conflicts, push of 20, ack) on a 50-entity home, median
 *   instances: 8 homes cycling at once through one PgStore vs two (two instances' pools on one database)
 *   wake: a push through instance A to a listener on instance B (LISTEN/NOTIFY), p50 / p99
 *   scale: N homes × 100 entities (10,000 by default, --homes N), then cycles on random homes
 * Flags: --quick (fewer runs, 1,000 homes), --homes N, --database-url URL (use that database, no private cluster).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/log.js';
import type { Micros, WirePushChange } from '../src/protocol/index.js';
import type { ChangeEvent } from '../src/server/live/index.js';
import { PgChangeNotifier } from '../src/server/pg/notifier.js';
import { PgStore } from '../src/server/pg/store.js';
import { ServerStore } from '../src/server/store/index.js';
import { ALL_TYPES_MASK } from '../src/server/store/pull.js';
import { startPgCluster, type PgCluster } from '../test/helpers/pg-cluster.js';
import { figure, median, percentile } from './lib.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const RUNS = QUICK ? 1 : 3;
const HOMES = Number(args[args.indexOf('--homes') + 1] ?? 0) || (QUICK ? 1_000 : 10_000);
const GIVEN_URL = args.includes('--database-url') ? args[args.indexOf('--database-url') + 1] : undefined;

/** The operations the figures need, on either store. */
interface Bench {
  readonly name: 'sqlite' | 'postgres';
  addClient(home: string): Promise<{ client_id: string; home_id: string }>;
  push(home: string, clientId: string, changes: WirePushChange[]): Promise<void>;
  /** A whole sync from `w`: open, every page, conflicts; returns the changes read and H. */
  sync(home: string, clientId: string, w: Micros | null, limit: number): Promise<{ n: number; h: Micros }>;
  ack(clientId: string, h: Micros): Promise<void>;
  close(): Promise<void>;
}

function sqliteBench(dir: string): Bench {
  const s = new ServerStore({ dataDir: dir, clock: Date.now });
  return {
    name: 'sqlite',
    addClient: async (home) => s.accounts.addClient(home),
    push: async (homeId, clientId, changes) => {
      s.push.apply({ homeId, clientId }, changes);
    },
    sync: async (homeId, clientId, w, limit) => {
      const h = s.sequencer.issue();
      let n = 0;
      let after = null;
      s.delta.conflicts(clientId, w, h, 1000);
      for (;;) {
        const page = s.delta.page({ homeId, clientId, w, h, typesMask: ALL_TYPES_MASK, includeDeleted: false, after, limit });
        n += page.changes.length;
        if (!page.more) return { n, h };
        after = page.last;
      }
    },
    ack: async (clientId, h) => s.accounts.recordAck(clientId, h),
    close: async () => s.close(),
  };
}

function pgBench(s: PgStore): Bench {
  return {
    name: 'postgres',
    addClient: (home) => s.addClient(home),
    push: async (homeId, clientId, changes) => {
      await s.applyPush({ homeId, clientId }, changes);
    },
    sync: async (homeId, clientId, w, limit) => {
      const opened = await s.openSync(homeId, w);
      if (!opened.ok) throw new Error(`openSync: ${opened.reason}`);
      const h = opened.h;
      let n = 0;
      let after = null;
      await s.conflicts(clientId, w, h, 1000);
      for (;;) {
        const page = await s.page({ homeId, clientId, w, h, typesMask: ALL_TYPES_MASK, includeDeleted: false, after, limit });
        n += page.changes.length;
        if (!page.more) return { n, h };
        after = page.last;
      }
    },
    ack: (clientId, h) => s.recordAck(clientId, h),
    close: () => s.close(),
  };
}

function change(i: number, at: string, tag: string): WirePushChange {
  const kind = i % 3;
  const base = { entity_id: `e-${i}`, operation: 'update' as const, updated_at: at, client_sync_id: `${tag}-${i}` };
  if (kind === 0) return { ...base, entity_type: 'entity_state', data: { device_id: `d-${i}`, state: { power: 'on', level: i % 100, temp: 21.5 } } };
  if (kind === 1) return { ...base, entity_type: 'device', data: { name: `Device ${i}`, room_id: `r-${i % 10}`, device_type: 'light', manufacturer: 'Acme' } };
  return { ...base, entity_type: 'room', data: { name: `Room ${i}`, floor: 1 } };
}

async function throughput(b: Bench, run: number): Promise<{ push: number; pull: number }> {
  const { client_id: pusher, home_id: home } = await b.addClient(`tp-${run}`);
  const { client_id: puller } = await b.addClient(home);
  const at = new Date().toISOString();
  let t = performance.now();
  for (let i = 0; i < 10_000; i += 1000) await b.push(home, pusher, Array.from({ length: 1000 }, (_, k) => change(i + k, at, `p${run}`)));
  const push = 10_000 / ((performance.now() - t) / 1000);
  t = performance.now();
  const { n } = await b.sync(home, puller, null, 1000);
  if (n !== 10_000) throw new Error(`pulled ${n}`);
  return { push, pull: 10_000 / ((performance.now() - t) / 1000) };
}

/** A typical home (50 entities): `cycles` cycles of sync from last_sync, push of 20, ack; returns each in ms. */
async function cycles(b: Bench, home: string, count: number, entities = 50): Promise<number[]> {
  const { client_id: c } = await b.addClient(home);
  await b.push(home, c, Array.from({ length: entities }, (_, i) => change(i, new Date().toISOString(), `${home}-seed`)));
  let { h } = await b.sync(home, c, null, 1000);
  const times: number[] = [];
  for (let n = 0; n < count; n++) {
    const start = performance.now();
    const next = await b.sync(home, c, h, 1000);
    const at = new Date().toISOString();
    await b.push(home, c, Array.from({ length: 20 }, (_, k) => change((n * 20 + k) % entities, at, `${home}-c${n}`)));
    await b.ack(c, next.h);
    h = next.h;
    times.push(performance.now() - start);
  }
  return times.slice(Math.min(20, Math.floor(count / 5))); // the first ones warm up
}

async function sectionBasics(sqlite: Bench, pg: Bench): Promise<void> {
  const results: Record<string, { push: number[]; pull: number[]; cycle: number[] }> = {
    sqlite: { push: [], pull: [], cycle: [] },
    postgres: { push: [], pull: [], cycle: [] },
  };
  for (let run = 0; run < RUNS; run++) {
    for (const b of run % 2 === 0 ? [sqlite, pg] : [pg, sqlite]) {
      const r = await throughput(b, run);
      results[b.name]?.push.push(r.push);
      results[b.name]?.pull.push(r.pull);
      results[b.name]?.cycle.push(median(await cycles(b, `typ-${run}`, 150)));
    }
  }
  for (const [name, r] of Object.entries(results)) {
    figure(`store.push.${name}`, Math.round(median(r.push)), 'changes/s');
    figure(`store.pull.${name}`, Math.round(median(r.pull)), 'changes/s');
    figure(`store.cycle_median.${name}`, median(r.cycle), 'ms');
  }
  const s = results.sqlite;
  const p = results.postgres;
  if (s && p) {
    figure('store.push.postgres/sqlite', median(p.push) / median(s.push), 'ratio');
    figure('store.pull.postgres/sqlite', median(p.pull) / median(s.pull), 'ratio');
    figure('store.cycle_median.postgres/sqlite', median(p.cycle) / median(s.cycle), 'ratio');
  }
}

async function sectionInstances(url: string): Promise<void> {
  const seconds = QUICK ? 3 : 8;
  for (const instances of [1, 2]) {
    const stores = await Promise.all(Array.from({ length: instances }, () => PgStore.open({ url, clock: Date.now, poolSize: 8 })));
    try {
      const benches = stores.map(pgBench);
      const homes = await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const b = benches[i % benches.length] as Bench;
          const home = `inst${instances}-${i}`;
          const { client_id: c } = await b.addClient(home);
          await b.push(home, c, Array.from({ length: 50 }, (_, k) => change(k, new Date().toISOString(), `${home}-seed`)));
          return { b, home, c, h: (await b.sync(home, c, null, 1000)).h };
        }),
      );
      const times: number[] = [];
      const deadline = performance.now() + seconds * 1000;
      await Promise.all(
        homes.map(async (x) => {
          for (let n = 0; performance.now() < deadline; n++) {
            const start = performance.now();
            const next = await x.b.sync(x.home, x.c, x.h, 1000);
            await x.b.push(x.home, x.c, Array.from({ length: 20 }, (_, k) => change((n * 20 + k) % 50, new Date().toISOString(), `${x.home}-${n}`)));
            await x.b.ack(x.c, next.h);
            x.h = next.h;
            times.push(performance.now() - start);
          }
        }),
      );
      figure(`instances.${instances}.cycles_per_s`, Math.round(times.length / seconds), 'cycles/s');
      figure(`instances.${instances}.cycle_p50`, median(times), 'ms');
      figure(`instances.${instances}.cycle_p99`, percentile(times, 99), 'ms');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  }
}

async function sectionWake(url: string): Promise<void> {
  const a = await PgStore.open({ url, clock: Date.now, instanceId: 'bench-a' });
  const listener = new PgChangeNotifier({ url, instanceId: 'bench-b', logger: silentLogger() });
  await listener.start();
  try {
    const { client_id: app, home_id: home } = await a.addClient('wake-home');
    const latencies: number[] = [];
    let resolveNext: ((e: ChangeEvent) => void) | undefined;
    const off = listener.subscribe(home, (e) => resolveNext?.(e));
    for (let i = 0; i < (QUICK ? 50 : 200); i++) {
      const heard = new Promise<ChangeEvent>((r) => {
        resolveNext = r;
      });
      const start = performance.now();
      await a.applyPush({ homeId: home, clientId: app }, [change(i, new Date().toISOString(), `w${i}`)]);
      await heard;
      latencies.push(performance.now() - start);
    }
    off();
    figure('wake_cross_instance.p50', median(latencies), 'ms');
    figure('wake_cross_instance.p99', percentile(latencies, 99), 'ms');
  } finally {
    await listener.close();
    await a.close();
  }
}

async function sectionScale(sqlite: Bench, pg: Bench): Promise<void> {
  for (const b of [sqlite, pg]) {
    const started = performance.now();
    const creds: { client_id: string; home_id: string }[] = new Array(HOMES);
    let next = 0;
    const at = new Date().toISOString();
    await Promise.all(
      Array.from({ length: b.name === 'postgres' ? 4 : 1 }, async () => {
        for (let i = next++; i < HOMES; i = next++) {
          const c = await b.addClient(`big-${i}`);
          creds[i] = c;
          await b.push(c.home_id, c.client_id, Array.from({ length: 100 }, (_, k) => change(k, at, `big${i}`)));
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    figure(`scale.${b.name}.seed_changes_per_s`, Math.round((HOMES * 100) / seconds), 'changes/s');
    const times: number[] = [];
    for (let n = 0; n < 200; n++) {
      const c = creds[Math.floor(Math.random() * HOMES)] as { client_id: string; home_id: string };
      const first = await b.sync(c.home_id, c.client_id, null, 1000);
      const start = performance.now();
      const again = await b.sync(c.home_id, c.client_id, first.h, 1000);
      await b.push(c.home_id, c.client_id, Array.from({ length: 20 }, (_, k) => change(k * 5, new Date().toISOString(), `bc${n}`)));
      await b.ack(c.client_id, again.h);
      times.push(performance.now() - start);
    }
    figure(`scale.${b.name}.${HOMES}x100.cycle_median`, median(times), 'ms');
    figure(`scale.${b.name}.${HOMES}x100.cycle_p99`, percentile(times, 99), 'ms');
  }
}

async function main(): Promise<void> {
  process.stdout.write(`# load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  let cluster: PgCluster | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'ib-bench-store-'));
  try {
    if (GIVEN_URL === undefined) cluster = await startPgCluster();
    const url = GIVEN_URL ?? (await (cluster as PgCluster).createDatabase('bench'));
    const pgStore = await PgStore.open({ url, clock: Date.now });
    const sqlite = sqliteBench(dir);
    const pg = pgBench(pgStore);
    try {
      process.stdout.write('# push / pull / typical cycle, SQLite baseline and PostgreSQL\n');
      await sectionBasics(sqlite, pg);
      process.stdout.write('# one instance vs two on one database (8 homes cycling at once)\n');
      await sectionInstances(url);
      process.stdout.write('# cross-instance wake (NOTIFY from A to a listener on B)\n');
      await sectionWake(url);
      process.stdout.write(`# ${HOMES} homes x 100 entities\n`);
      await sectionScale(sqlite, pg);
    } finally {
      await sqlite.close();
      await pg.close();
    }
  } finally {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`# load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

/**
 * Ingest benchmark (issue 3 item 11): QoS 0 and QoS 1 messages/s delivered into SQLite (fsync on every commit,
 * synchronous=FULL) against the same load on a bare aedes with no ingest, in the same run. The mqtt.js clients run
 * in a worker thread; the broker (and, for ingest, SQLite) runs on the main thread, as in the daemon.
 *
 *   QoS 1: from "go" until every PUBACK arrived (a PUBACK means committed, for ingest).
 *   QoS 0: from "go" until the broker has seen every message and, for ingest, committed it.
 *
 * Run: tsc -p tsconfig.bench.json && node .bench-build/bench/ingest.js [--clients 4] [--per-client 25000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { createBroker } from '../src/broker/index.js';
import { createIngest, createNativeAdapter, type Ingest, type IngestMetrics } from '../src/ingest/index.js';
import { silentLogger } from '../src/log.js';
import { openStore } from '../src/store/index.js';
import type { LoadSpec } from './ingest-load.js';

export interface IngestBenchOptions {
  readonly clients?: number;
  readonly perClient?: number;
  readonly devicesPerClient?: number;
  readonly groupCommitWindowMs?: number;
  readonly maxBatch?: number;
  /** Runs of each scenario; the best is reported (the machine is shared). */
  readonly runs?: number;
  /** Messages in flight per client (PUBACK pending, or not yet written for QoS 0). */
  readonly window?: number;
  /** Scenario names to run (default all); the ratios need both bare and ingest ones. */
  readonly only?: readonly string[];
  /** Called after each ingest run with its wall time and counters (tuning). */
  readonly detail?: (scenario: string, seconds: number, metrics: IngestMetrics) => void;
  readonly log?: (line: string) => void;
}

const WorkerMessageSchema = z.union([
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('sent'), at: z.number() }),
]);

interface Scenario {
  readonly name: string;
  readonly ingest: boolean;
  readonly qos: 0 | 1;
  readonly repeated: boolean;
  /** Where the store's writer runs (ingest scenarios); default worker. */
  readonly writer?: 'worker' | 'inline';
}

async function runScenario(scenario: Scenario, o: Required<Omit<IngestBenchOptions, 'log' | 'only' | 'detail'>> & Pick<IngestBenchOptions, 'detail'>): Promise<number> {
  const logger = silentLogger();
  const dir = mkdtempSync(join(tmpdir(), 'ingest-bench-'));
  const store = openStore({ path: join(dir, 'gateway.db'), logger, writer: scenario.writer ?? 'worker' });
  const broker = createBroker({ host: '127.0.0.1', port: 0, logger, limits: { queueLimit: 10_000 } });
  let seen = 0;
  broker.addPublishInterceptor((_c, _p, done) => {
    seen += 1;
    done(null);
  });
  let ingest: Ingest | undefined;
  if (scenario.ingest) {
    ingest = createIngest({
      broker,
      store,
      logger,
      clock: { nowMicros: () => Date.now() * 1000 },
      adapters: [createNativeAdapter()],
      groupCommitWindowMs: o.groupCommitWindowMs,
      maxBatch: o.maxBatch,
    });
    ingest.start();
  }
  const { port } = await broker.start();
  const total = o.clients * o.perClient;
  const spec: LoadSpec = {
    url: `mqtt://127.0.0.1:${port}`,
    clients: o.clients,
    perClient: o.perClient,
    qos: scenario.qos,
    repeated: scenario.repeated,
    devicesPerClient: o.devicesPerClient,
    window: o.window,
  };
  const worker = new Worker(fileURLToPath(new URL('./ingest-load.js', import.meta.url)));
  try {
    const next = (): Promise<z.infer<typeof WorkerMessageSchema>> =>
      new Promise((resolve, reject) => {
        worker.once('message', (m: unknown) => resolve(WorkerMessageSchema.parse(m)));
        worker.once('error', reject);
      });
    worker.postMessage({ type: 'load', spec });
    await next();
    const started = performance.now();
    worker.postMessage({ type: 'go' });
    if (scenario.qos === 1) {
      await next(); // every PUBACK received
    } else {
      while (seen < total) await new Promise((r) => setImmediate(r));
      await ingest?.flush(); // what is still in the window goes to disk now
    }
    const seconds = (performance.now() - started) / 1000;
    if (ingest) {
      await ingest.flush();
      const m = ingest.metrics();
      if (m.messagesIngested !== total) throw new Error(`${scenario.name}: ingested ${m.messagesIngested} of ${total}`);
      o.detail?.(scenario.name, seconds, m);
    }
    return total / seconds;
  } finally {
    await worker.terminate();
    await ingest?.stop();
    await broker.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runIngestBench(options: IngestBenchOptions = {}): Promise<Record<string, number>> {
  const only = options.only;
  const o = {
    clients: options.clients ?? 4,
    perClient: options.perClient ?? 25_000,
    devicesPerClient: options.devicesPerClient ?? 100,
    groupCommitWindowMs: options.groupCommitWindowMs ?? 4,
    maxBatch: options.maxBatch ?? 2000,
    runs: options.runs ?? 3,
    window: options.window ?? 1000,
    detail: options.detail,
  };
  const log = options.log ?? ((line: string) => console.log(line));
  const scenarios: Scenario[] = [
    { name: 'bare_aedes_qos0', ingest: false, qos: 0, repeated: false },
    { name: 'ingest_qos0_distinct', ingest: true, qos: 0, repeated: false },
    { name: 'bare_aedes_qos1', ingest: false, qos: 1, repeated: false },
    { name: 'ingest_qos1_distinct', ingest: true, qos: 1, repeated: false },
    { name: 'ingest_qos1_distinct_inline', ingest: true, qos: 1, repeated: false, writer: 'inline' },
    { name: 'ingest_qos1_repeated', ingest: true, qos: 1, repeated: true },
  ];
  const results: Record<string, number> = {};
  // Interleave the runs so a noisy neighbour on the shared machine hurts every scenario alike.
  for (let run = 0; run < o.runs; run += 1) {
    for (const scenario of scenarios) {
      if (only && !only.includes(scenario.name)) continue;
      const rate = await runScenario(scenario, o);
      results[scenario.name] = Math.max(results[scenario.name] ?? 0, rate);
    }
  }
  const figures: Record<string, number> = {};
  for (const s of scenarios) figures[`${s.name}_msgs_per_s`] = Math.round(results[s.name] ?? 0);
  figures.ingest_qos0_ratio_to_bare = round3((results.ingest_qos0_distinct ?? 0) / (results.bare_aedes_qos0 ?? 1));
  figures.ingest_qos1_ratio_to_bare = round3((results.ingest_qos1_distinct ?? 0) / (results.bare_aedes_qos1 ?? 1));
  figures.ingest_qos1_repeated_ratio_to_bare = round3((results.ingest_qos1_repeated ?? 0) / (results.bare_aedes_qos1 ?? 1));
  log(`# ingest bench: ${o.clients} clients x ${o.perClient} messages, ${o.devicesPerClient} devices each, ` +
    `${o.window} in flight per client, window ${o.groupCommitWindowMs} ms, max batch ${o.maxBatch}, best of ${o.runs}`);
  for (const [name, value] of Object.entries(figures)) log(`${name}: ${value} ${name.includes('ratio') ? 'ratio' : 'msgs/s'}`);
  return figures;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function flag(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : undefined;
  return raw === undefined ? undefined : Number(raw);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runIngestBench({
    clients: flag('clients'),
    perClient: flag('per-client'),
    devicesPerClient: flag('devices'),
    groupCommitWindowMs: flag('window'),
    maxBatch: flag('max-batch'),
    runs: flag('runs'),
    window: flag('inflight'),
  }).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

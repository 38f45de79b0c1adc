/**
 * Ingest benchmark: QoS 0 and QoS 1 messages/s delivered into SQLite (durable QoS 1: the PUBACK waits for the fsync
 * of its commit) against the same load on a bare aedes with no ingest and, where installed, on Mosquitto, in the same
 * run. The mqtt.js clients run in a worker thread; the broker runs on the main thread, as in the daemon; the store's
 * writer on its own thread (`worker`, the default) or on the main thread (`inline`). Every scenario runs once per
 * round, rounds interleaved (a noisy neighbour on the shared machine hurts every scenario alike); figures are medians.
 *
 *   QoS 1: from "go" until every PUBACK arrived (a PUBACK means committed, for ingest).
 *   QoS 0: from "go" until the broker has seen every message and, for ingest, committed it.
 *
 * Run: tsc -p tsconfig.bench.json && node .bench-build/bench/ingest.js [--clients 4] [--per-client 25000]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { createBroker } from '../src/broker/index.js';
import { createIngest, createNativeAdapter, type Ingest, type IngestMetrics } from '../src/ingest/index.js';
import { silentLogger } from '../src/log.js';
import { openStore } from '../src/store/index.js';
import type { LoadSpec } from './ingest-load.js';
import { median } from './lib.js';

export interface IngestBenchOptions {
  readonly clients?: number;
  readonly perClient?: number;
  readonly devicesPerClient?: number;
  readonly groupCommitWindowMs?: number;
  readonly maxBatch?: number;
  /** Interleaved rounds (every scenario once per round); the median of the rounds is reported. */
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
  /** `mosquitto`: the load goes to a Mosquitto child process instead of aedes (skipped when not installed). */
  readonly broker?: 'aedes' | 'mosquitto';
  readonly ingest: boolean;
  readonly qos: 0 | 1;
  readonly repeated: boolean;
  /** Where the store's writer runs (ingest scenarios); default worker. */
  readonly writer?: 'worker' | 'inline';
}

/** The load generator in a worker thread against `url`: resolves with a function that sends the load and waits. */
async function loadGenerator(url: string, scenario: Scenario, o: Required<Omit<IngestBenchOptions, 'log' | 'only' | 'detail'>>): Promise<{ go: (until: (end: () => Promise<unknown>) => Promise<unknown>) => Promise<number>; stop: () => Promise<number> }> {
  const spec: LoadSpec = { url, clients: o.clients, perClient: o.perClient, qos: scenario.qos, repeated: scenario.repeated, devicesPerClient: o.devicesPerClient, window: o.window };
  const worker = new Worker(fileURLToPath(new URL('./ingest-load.js', import.meta.url)));
  const next = (): Promise<z.infer<typeof WorkerMessageSchema>> =>
    new Promise((resolve, reject) => {
      worker.once('message', (m: unknown) => resolve(WorkerMessageSchema.parse(m)));
      worker.once('error', reject);
    });
  worker.postMessage({ type: 'load', spec });
  await next();
  return {
    /** Sends everything; `until` resolves when the run counts as done (default: the worker's own end). Seconds. */
    go: async (until) => {
      const started = performance.now();
      worker.postMessage({ type: 'go' });
      await until(next);
      return (performance.now() - started) / 1000;
    },
    stop: () => worker.terminate(),
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function mosquittoInstalled(): boolean {
  return spawnSync('mosquitto', ['-h'], { stdio: 'ignore' }).error === undefined;
}

/** The same load against a Mosquitto child process (in-memory, no persistence): the baseline of a C broker. */
async function runMosquitto(scenario: Scenario, o: Required<Omit<IngestBenchOptions, 'log' | 'only' | 'detail'>>): Promise<number> {
  const port = await freePort();
  const proc = spawn('mosquitto', ['-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('mosquitto did not start')), 5000);
    proc.stderr.on('data', (c: Buffer) => {
      if (c.toString().includes('running')) {
        clearTimeout(t);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code})`)));
  });
  try {
    const load = await loadGenerator(`mqtt://127.0.0.1:${port}`, scenario, o);
    try {
      // QoS 1: every PUBACK; QoS 0: every message written to the socket
      return (o.clients * o.perClient) / (await load.go((end) => end()));
    } finally {
      await load.stop();
    }
  } finally {
    proc.kill('SIGTERM');
  }
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
      // 4 clients x 100 devices appear at once from one identity: above the default 100 new devices a minute.
      deviceLimits: { newPerMinute: 10_000, total: 5_000 },
    });
    ingest.start();
  }
  const { port } = await broker.start();
  const total = o.clients * o.perClient;
  const load = await loadGenerator(`mqtt://127.0.0.1:${port}`, scenario, o);
  try {
    const seconds = await load.go(async (end) => {
      if (scenario.qos === 1) {
        await end(); // every PUBACK received
        return;
      }
      while (seen < total) await new Promise((r) => setImmediate(r));
      await ingest?.flush(); // what is still in the window goes to disk now
    });
    if (ingest) {
      await ingest.flush();
      const m = ingest.metrics();
      if (m.messagesIngested !== total) throw new Error(`${scenario.name}: ingested ${m.messagesIngested} of ${total}`);
      o.detail?.(scenario.name, seconds, m);
    }
    return total / seconds;
  } finally {
    await load.stop();
    await ingest?.stop();
    await broker.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runIngestBench(options: IngestBenchOptions = {}): Promise<Record<string, number>> {
  const only = options.only;
  const mosquitto = mosquittoInstalled();
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
    ...(mosquitto
      ? [
          { name: 'mosquitto_qos0', broker: 'mosquitto', ingest: false, qos: 0, repeated: false } as const,
          { name: 'mosquitto_qos1', broker: 'mosquitto', ingest: false, qos: 1, repeated: false } as const,
        ]
      : []),
  ];
  const rates: Record<string, number[]> = {};
  const load0 = loadavg()[0] ?? 0;
  // Interleave the runs so a noisy neighbour on the shared machine hurts every scenario alike.
  for (let run = 0; run < o.runs; run += 1) {
    for (const scenario of scenarios) {
      if (only && !only.includes(scenario.name)) continue;
      const rate = scenario.broker === 'mosquitto' ? await runMosquitto(scenario, o) : await runScenario(scenario, o);
      (rates[scenario.name] ??= []).push(rate);
    }
  }
  const results: Record<string, number> = {};
  for (const [name, list] of Object.entries(rates)) results[name] = median(list);
  const figures: Record<string, number> = {};
  for (const s of scenarios) if (results[s.name] !== undefined) figures[`${s.name}_msgs_per_s`] = Math.round(results[s.name] ?? 0);
  const ratio = (a: string, b: string): number => round3((results[a] ?? 0) / (results[b] ?? 1));
  figures.ingest_qos0_ratio_to_bare = ratio('ingest_qos0_distinct', 'bare_aedes_qos0');
  figures.ingest_qos1_ratio_to_bare = ratio('ingest_qos1_distinct', 'bare_aedes_qos1');
  figures.ingest_qos1_inline_ratio_to_bare = ratio('ingest_qos1_distinct_inline', 'bare_aedes_qos1');
  figures.ingest_qos1_repeated_ratio_to_bare = ratio('ingest_qos1_repeated', 'bare_aedes_qos1');
  if (mosquitto) {
    figures.ingest_qos1_ratio_to_mosquitto = ratio('ingest_qos1_distinct', 'mosquitto_qos1');
    figures.bare_aedes_qos1_ratio_to_mosquitto = ratio('bare_aedes_qos1', 'mosquitto_qos1');
  }
  log(`# ingest bench: ${o.clients} clients x ${o.perClient} messages, ${o.devicesPerClient} devices each, ` +
    `${o.window} in flight per client, window ${o.groupCommitWindowMs} ms, max batch ${o.maxBatch}, median of ${o.runs} interleaved rounds` +
    `${mosquitto ? '' : ' (mosquitto not installed: no mosquitto baseline)'}; load average ${load0.toFixed(2)} → ${(loadavg()[0] ?? 0).toFixed(2)}`);
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

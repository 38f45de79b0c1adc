/**
 * Footprint and SD-card figures of the daemon as it ships: the built `dist/cli.js run` as a child process with the
 * V8 flags of systemd/inbetweenies-gateway.service, syncing with the project's server, at the reference home load
 * (100 devices, 10 messages/s in all, every other message a repeat of the device's last state).
 *
 * - memory: RSS (/proc/<pid>/status VmRSS) and private memory (Private_Dirty + Private_Clean of
 *   /proc/<pid>/smaps_rollup), the median of the second half of each run; baseline: a bare `node` with the same flags,
 *   sampled in the same round;
 * - disk: bytes the daemon caused to be written (/proc/<pid>/io write_bytes) over the run, scaled to a day; QoS 1 at
 *   PUBACK grouping windows (ingest.groupCommitWindowMs) 0, 100 and 1000 ms, QoS 0 at the default qos0WindowMs.
 *
 * Each configuration runs once per round, rounds interleaved (the machine is shared); figures are medians over the
 * rounds, with the load average before and after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { silentLogger } from '../src/log.js';
import { createSyncServer, parseServerConfig } from '../src/server/index.js';
import { onLines } from '../src/util/lines.js';
import { figure, median, sleep, tempDir } from './lib.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const UNIT = join(ROOT, 'systemd/inbetweenies-gateway.service');

/** The node flags the systemd unit runs the daemon with (ExecStart=… node <flags> …/cli.js run). */
export function unitNodeFlags(): string[] {
  const exec = readFileSync(UNIT, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
  if (!exec) throw new Error(`${UNIT}: no ExecStart line`);
  return exec.split(/\s+/).filter((w) => w.startsWith('--max') || w.startsWith('--v8') || w.startsWith('--optimize') || w.startsWith('--lite') || w.startsWith('--single'));
}

interface MemSample {
  readonly rssMb: number;
  readonly privateMb: number;
}

function kb(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

function sample(pid: number): MemSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssMb: kb(status, 'VmRSS') / 1024, privateMb: (kb(rollup, 'Private_Dirty') + kb(rollup, 'Private_Clean')) / 1024 };
}

function writeBytes(pid: number): number {
  const m = /^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Starts `node <args>`; with `waitFor`, resolves once a log line names the MQTT port. */
async function spawnNode(args: string[], env: NodeJS.ProcessEnv, waitFor?: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, INBETWEENIES_LOG_LEVEL: 'info', ...env } });
  if (!waitFor) return { proc, port: 0 };
  const port = await new Promise<number>((done, fail) => {
    onLines(proc.stdout, (line) => {
      if (!line.includes(waitFor)) return;
      const mqttAddress = (JSON.parse(line) as { mqtt?: unknown }).mqtt;
      const p = typeof mqttAddress === 'string' ? Number(mqttAddress.slice(mqttAddress.lastIndexOf(':') + 1)) : NaN;
      if (Number.isInteger(p)) done(p);
    });
    proc.once('exit', (code) => fail(new Error(`daemon exited early (${code})`)));
  });
  proc.stdout?.resume();
  return { proc, port };
}

async function stopNode(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
}

/** 100 devices, 10 messages/s in all, every other message a repeat of the device's last state. */
async function referenceLoad(client: MqttClient, seconds: number, qos: 0 | 1): Promise<number> {
  let sent = 0;
  const last = new Map<number, string>();
  const start = Date.now();
  while (Date.now() < start + seconds * 1000) {
    const d = sent % 100;
    const repeat = sent % 2 === 1 && last.has(d);
    const payload = repeat ? (last.get(d) ?? '{}') : JSON.stringify({ temperature: Math.round(Math.random() * 300) / 10, battery: 90 });
    last.set(d, payload);
    await client.publishAsync(`devices/ref-${d}/state`, payload, { qos });
    sent += 1;
    await sleep(Math.max(0, start + sent * 100 - Date.now())); // paced at 10 messages/s, whatever a publish costs
  }
  return sent;
}

export interface Config {
  readonly name: string;
  readonly writer: 'worker' | 'inline';
  readonly qos: 0 | 1;
  /** ingest.groupCommitWindowMs; undefined = the default. */
  readonly windowMs?: number;
  /** ingest.qos0WindowMs; undefined = the default. */
  readonly qos0WindowMs?: number;
  readonly memory: boolean;
}

export interface RunResult {
  readonly rssMb: number;
  readonly privateMb: number;
  readonly mibPerDay: number;
  readonly messages: number;
}

interface Rig {
  readonly url: string;
  readonly addClient: () => Promise<{ client_id: string; client_secret: string }>;
  readonly dir: string;
}

async function runConfig(rig: Rig, config: Config, seconds: number, flags: string[]): Promise<RunResult> {
  const dir = tempDir('ib-bench-gw-');
  const ingest = [
    ...(config.windowMs === undefined ? [] : [`  groupCommitWindowMs: ${config.windowMs}`]),
    ...(config.qos0WindowMs === undefined ? [] : [`  qos0WindowMs: ${config.qos0WindowMs}`]),
  ];
  const yaml = [`store:\n  writer: ${config.writer}`, ...(ingest.length > 0 ? [`ingest:\n${ingest.join('\n')}`] : [])].join('\n');
  writeFileSync(join(dir, 'gateway.yaml'), `${yaml}\n`);
  const creds = await rig.addClient();
  const args = [...flags, CLI, 'run', '--config', join(dir, 'gateway.yaml'), '--data-dir', join(dir, 'gw'), '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', '--server-url', rig.url, '--client-id', creds.client_id];
  const { proc, port } = await spawnNode(args, { INBETWEENIES_CLIENT_SECRET: creds.client_secret }, 'gateway started');
  const pid = proc.pid ?? 0;
  try {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `bench-${config.name}` });
    await referenceLoad(client, 5, config.qos); // warm up: devices exist, first syncs done
    const io0 = writeBytes(pid);
    const samples: MemSample[] = [];
    const watching = (async () => {
      const end = Date.now() + seconds * 1000;
      while (Date.now() < end) {
        samples.push(sample(pid));
        await sleep(500);
      }
    })();
    const messages = await referenceLoad(client, seconds, config.qos);
    await watching;
    const written = writeBytes(pid) - io0;
    await client.endAsync();
    const steady = samples.slice(Math.floor(samples.length / 2));
    return {
      rssMb: median(steady.map((s) => s.rssMb)),
      privateMb: median(steady.map((s) => s.privateMb)),
      mibPerDay: (written / seconds) * 86_400 / 1024 / 1024,
      messages,
    };
  } finally {
    await stopNode(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function bareNode(flags: string[]): Promise<MemSample> {
  const { proc } = await spawnNode([...flags, '-e', 'setInterval(() => {}, 1000)'], {});
  await sleep(1500);
  const s = sample(proc.pid ?? 0);
  await stopNode(proc);
  return s;
}

export const CONFIGS: readonly Config[] = [
  { name: 'worker_qos1_default', writer: 'worker', qos: 1, memory: true },
  { name: 'inline_qos1_default', writer: 'inline', qos: 1, memory: true },
  { name: 'worker_qos1_window_0', writer: 'worker', qos: 1, windowMs: 0, memory: false },
  { name: 'worker_qos1_window_100', writer: 'worker', qos: 1, windowMs: 100, memory: false },
  { name: 'worker_qos1_window_1000', writer: 'worker', qos: 1, windowMs: 1000, memory: false },
  { name: 'worker_qos0_default', writer: 'worker', qos: 0, memory: false },
  { name: 'worker_qos0_window_5000', writer: 'worker', qos: 0, qos0WindowMs: 5000, memory: false },
];

export async function runMemoryBench(options: { seconds?: number; rounds?: number; only?: readonly string[] } = {}): Promise<Record<string, number>> {
  const seconds = options.seconds ?? 60;
  const rounds = options.rounds ?? 3;
  const configs = CONFIGS.filter((c) => !options.only || options.only.includes(c.name));
  const flags = unitNodeFlags();
  const dir = tempDir('ib-bench-mem-');
  const server = createSyncServer({ config: parseServerConfig({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'server'), log: { level: 'silent' } }), logger: silentLogger() });
  const { url } = await server.listen();
  let homes = 0;
  const rig: Rig = { url, dir, addClient: () => server.addClient(`home-mem-${(homes += 1)}`) };
  const load0 = loadavg()[0] ?? 0;
  const bare: MemSample[] = [];
  const results = new Map<string, RunResult[]>();
  try {
    for (let round = 0; round < rounds; round += 1) {
      bare.push(await bareNode(flags));
      for (const config of configs) {
        const r = await runConfig(rig, config, seconds, flags);
        results.set(config.name, [...(results.get(config.name) ?? []), r]);
      }
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const figures: Record<string, number> = {};
  process.stdout.write(`# footprint: ${rounds} interleaved rounds of ${seconds} s per configuration, flags ${flags.join(' ')}; load average ${load0.toFixed(2)} → ${(loadavg()[0] ?? 0).toFixed(2)}\n`);
  figures.baseline_bare_node_rss_mb = median(bare.map((s) => s.rssMb));
  figures.baseline_bare_node_private_mb = median(bare.map((s) => s.privateMb));
  for (const config of configs) {
    const rs = results.get(config.name) ?? [];
    if (config.memory) {
      figures[`${config.name}_rss_mb`] = median(rs.map((r) => r.rssMb));
      figures[`${config.name}_private_mb`] = median(rs.map((r) => r.privateMb));
    }
    figures[`${config.name}_disk_mib_per_day`] = median(rs.map((r) => r.mibPerDay));
  }
  for (const [name, value] of Object.entries(figures)) figure(name, value, name.endsWith('_per_day') ? 'MiB/day' : 'MB', 1);
  return figures;
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  runMemoryBench({
    seconds: Number(flag('seconds') ?? 60),
    rounds: Number(flag('rounds') ?? 3),
    ...(flag('only') ? { only: (flag('only') ?? '').split(',') } : {}),
  }).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

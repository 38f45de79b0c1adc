/**
 * Memory and disk figures of the daemon as it ships (issue 3 item 11): the built `dist/cli.js run` as a child process
 * with the V8 flags of systemd/inbetweenies-gateway.service, at the reference home load (100 devices, 10 messages/s
 * in all, half of them repeats) and under a saturating ingest load. RSS and peak RSS from /proc/<pid>/status,
 * private anonymous memory from /proc/<pid>/smaps_rollup, bytes written from /proc/<pid>/io. Baseline: a bare Node
 * process with the same flags, measured in the same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { silentLogger } from '../src/log.js';
import { createSyncServer, parseServerConfig } from '../src/server/index.js';
import { onLines } from '../src/util/lines.js';
import { figure, median, sleep, tempDir, unitNodeFlags } from './lib.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const UNIT = join(ROOT, 'systemd/inbetweenies-gateway.service');

/** The node flags the systemd unit runs the daemon with. */
export function daemonNodeFlags(): string[] {
  return unitNodeFlags(UNIT);
}

function kb(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}

interface MemSample {
  readonly rssMb: number;
  readonly hwmMb: number;
  readonly anonMb: number;
}

function sample(pid: number): MemSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssMb: kb(status, 'VmRSS') / 1024, hwmMb: kb(status, 'VmHWM') / 1024, anonMb: kb(rollup, 'Anonymous') / 1024 };
}

function writeBytes(pid: number): number {
  const m = /^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function spawnNode(args: string[], waitFor: string | undefined, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, INBETWEENIES_LOG_LEVEL: 'info', ...extraEnv } });
  if (!waitFor) return { proc, port: 0 };
  const port = await new Promise<number>((done, fail) => {
    onLines(proc.stdout, (line) => {
      if (!line.includes(waitFor)) return;
      // The daemon's own "gateway started" line names the broker as host:port (stable, unlike listener lines).
      const mqttAddress = (JSON.parse(line) as { mqtt?: unknown }).mqtt;
      const p = typeof mqttAddress === 'string' ? Number(mqttAddress.slice(mqttAddress.lastIndexOf(':') + 1)) : NaN;
      if (Number.isInteger(p)) done(p);
    });
    proc.once('exit', (code) => fail(new Error(`daemon exited early (${code})`)));
  });
  proc.stdout?.resume();
  return { proc, port };
}

async function watch(pid: number, ms: number): Promise<MemSample[]> {
  const samples: MemSample[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    samples.push(sample(pid));
    await sleep(500);
  }
  return samples;
}

/** 100 devices, 10 messages/s in all, every other message a repeat of the device's last state. */
async function referenceLoad(client: MqttClient, seconds: number, qos: 0 | 1 = 1): Promise<number> {
  let sent = 0;
  const last = new Map<number, string>();
  const start = Date.now();
  const end = start + seconds * 1000;
  while (Date.now() < end) {
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

async function saturate(clients: MqttClient[], seconds: number): Promise<number> {
  let sent = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (c, ci) => {
      while (Date.now() < end) {
        await Promise.all(Array.from({ length: 200 }, (_, k) => c.publishAsync(`devices/load-${ci}-${k % 50}/state`, JSON.stringify({ v: sent + k }), { qos: 1 })));
        sent += 200;
      }
    }),
  );
  return sent;
}

export async function runMemoryBench(options: { referenceSeconds?: number; loadSeconds?: number } = {}): Promise<void> {
  const refSeconds = options.referenceSeconds ?? 60;
  const loadSeconds = options.loadSeconds ?? 15;
  const flags = daemonNodeFlags();
  const dir = tempDir('ib-bench-mem-');
  const server = createSyncServer({ config: parseServerConfig({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'server'), log: { level: 'silent' } }), logger: silentLogger() });
  const { url } = await server.listen();
  const creds = await server.addClient('home-mem');

  // Baseline: bare node with the same flags.
  const bare = await spawnNode([...flags, '-e', 'setInterval(() => {}, 1000)'], undefined);
  await sleep(1500);
  const bareSample = sample(bare.proc.pid ?? 0);
  bare.proc.kill('SIGKILL');

  const args = [...flags, CLI, 'run', '--data-dir', join(dir, 'gw'), '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--server-url', url, '--client-id', creds.client_id];
  const { proc, port } = await spawnNode(args, 'gateway started', { INBETWEENIES_CLIENT_SECRET: creds.client_secret });
  const pid = proc.pid ?? 0;
  try {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'bench-ref' });
    await referenceLoad(client, 5); // warm up: devices exist, first sync done
    const io0 = writeBytes(pid);
    const [samples, sent] = await Promise.all([watch(pid, refSeconds * 1000), referenceLoad(client, refSeconds)]);
    const written = writeBytes(pid) - io0;
    const steady = samples.slice(Math.floor(samples.length / 2));
    figure('baseline_bare_node_rss', bareSample.rssMb, 'MB', 1);
    figure('baseline_bare_node_private_anon', bareSample.anonMb, 'MB', 1);
    figure('reference_home_rss_steady', median(steady.map((s) => s.rssMb)), 'MB', 1);
    figure('reference_home_rss_peak', Math.max(...samples.map((s) => s.hwmMb)), 'MB', 1);
    figure('reference_home_private_anon_steady', median(steady.map((s) => s.anonMb)), 'MB', 1);
    figure('reference_home_private_anon_peak', Math.max(...samples.map((s) => s.anonMb)), 'MB', 1);
    figure('reference_home_messages', sent, 'messages', 0);
    figure('disk_written_per_1000_updates_qos1', (written / sent) * 1000 / 1024, 'KiB', 1);
    figure('disk_written_per_day_reference_home_qos1', (written / refSeconds) * 86_400 / 1024 / 1024, 'MiB', 1);
    // The same home with QoS 0 devices (zigbee2mqtt's, Tasmota's and Home Assistant's default).
    const io1 = writeBytes(pid);
    const sent0 = await referenceLoad(client, refSeconds, 0);
    const written0 = writeBytes(pid) - io1;
    figure('disk_written_per_1000_updates_qos0', (written0 / sent0) * 1000 / 1024, 'KiB', 1);
    figure('disk_written_per_day_reference_home_qos0', (written0 / refSeconds) * 86_400 / 1024 / 1024, 'MiB', 1);

    const loaders = await Promise.all(Array.from({ length: 4 }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `bench-load-${i}` })));
    const [loadSamples, loadSent] = await Promise.all([watch(pid, loadSeconds * 1000), saturate(loaders, loadSeconds)]);
    figure('ingest_load_messages_per_s', loadSent / loadSeconds, 'msg/s', 0);
    figure('ingest_load_rss_peak', Math.max(...loadSamples.map((s) => s.hwmMb)), 'MB', 1);
    figure('ingest_load_private_anon_peak', Math.max(...loadSamples.map((s) => s.anonMb)), 'MB', 1);
    await Promise.all([client, ...loaders].map((c) => c.endAsync()));
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

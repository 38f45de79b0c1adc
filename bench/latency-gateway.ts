/**
 * The gateway's live sync (`npm run bench:latency`, section "gateway"): the built gateway as a child process, the
 * real server in this process, real MQTT devices. Each run measures, idle and under the reference home load (100
 * devices, 10 messages a second):
 *   - downlink: an app's push of a light's state → the command on devices/bench-light/set at the device;
 *   - uplink, critical: a lock's PUBLISH → the change seen on the server (by an app holding live waits there);
 *   - uplink, ordinary: a sensor's PUBLISH → the change on the server (five sensors a round, at random moments);
 * p50 / p99 / max over `samples` each; and under the load alone, the upstream bytes a day (the transport's counters:
 * headers estimated, bodies as sent; no TCP/IP overhead) and pushes a second.
 * Runs: live (the shipped defaults: live waits, critical debounce 20 ms, uplink window 1 s) and the baseline, polling
 * as shipped before live sync (live waits off, polls adaptive 5 s – 5 min, local changes within 5 s, critical debounce
 * 250 ms), in the same process one after the other; then the upstream bytes of live with a 2 s window.
 */
import { rmSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { silentLogger } from '../src/log.js';
import { createSyncServer, parseServerConfig, type SyncServer } from '../src/server/index.js';
import { connectApp, type AppClient } from '../src/sim/app-client.js';
import { referenceLoad, ServerWatch, startGatewayChild, type GatewayChild, type SyncSettings } from './latency-home.js';
import { figure, percentile, sleep, tempDir } from './lib.js';

const HOME = 'bench-home';
const SAMPLE_TIMEOUT_MS = 400_000;
const ORDINARY_PER_ROUND = 5;

export interface GatewayBenchOptions {
  readonly samples: number;
  /** How long the load runs for the bytes figure. */
  readonly bytesSeconds: number;
}

interface Mode {
  readonly name: string;
  readonly sync: SyncSettings;
}

const LIVE: Mode = { name: 'live', sync: {} };
const POLLING: Mode = { name: 'polling', sync: { live: false, minIntervalSeconds: 5, maxIntervalSeconds: 300, uplinkWindowMs: 5000, criticalDebounceMs: 250 } };
const LIVE_2S: Mode = { name: 'live_window_2s', sync: { uplinkWindowMs: 2000 } };

type Figures = Map<string, number[]>;

interface Home {
  readonly server: SyncServer;
  readonly gateway: GatewayChild;
  readonly app: AppClient;
  readonly watch: ServerWatch;
  readonly devices: MqttClient;
  readonly load: MqttClient;
  readonly commands: Map<number, number>;
  close(): Promise<void>;
}

async function startHome(mode: Mode): Promise<Home> {
  const dir = tempDir('ib-bench-gw-');
  const config = parseServerConfig({ host: '127.0.0.1', port: 0, dataDir: `${dir}/server`, hmac: { required: true }, log: { level: 'silent' } });
  const server = createSyncServer({ config, logger: silentLogger() });
  const { url } = await server.listen();
  const gw = await server.addClient(HOME);
  const gateway = await startGatewayChild(dir, { url, clientId: gw.client_id, secret: gw.client_secret }, mode.sync);
  const mqttUrl = `mqtt://127.0.0.1:${gateway.mqttPort}`;
  const devices = await mqtt.connectAsync(mqttUrl, { clientId: 'bench-devices', reconnectPeriod: 0 });
  const load = await mqtt.connectAsync(mqttUrl, { clientId: 'bench-load', reconnectPeriod: 0 });
  const commands = new Map<number, number>();
  devices.on('message', (_topic, payload) => {
    const n = (JSON.parse(payload.toString()) as { n?: unknown }).n;
    if (typeof n === 'number') commands.set(n, performance.now());
  });
  await devices.subscribeAsync('devices/bench-light/set', { qos: 1 });
  const meta = (id: string, type: string): Promise<unknown> => devices.publishAsync(`devices/${id}/meta`, JSON.stringify({ name: id, type, room: 'Bench' }), { qos: 1, retain: true });
  await meta('bench-light', 'light');
  await meta('bench-lock', 'lock');
  for (let k = 0; k < ORDINARY_PER_ROUND; k += 1) await meta(`bench-temp-${k}`, 'sensor');
  for (let d = 0; d < 100; d += 1) await load.publishAsync(`devices/ref-${d}/meta`, JSON.stringify({ name: `ref-${d}`, type: 'sensor' }), { qos: 1, retain: true });
  await devices.publishAsync('devices/bench-light/state', JSON.stringify({ state: 'OFF', n: 0 }), { qos: 1 });
  const app = await connectApp(url, await server.addClient(HOME), silentLogger());
  const watch = new ServerWatch(url, await server.addClient(HOME));
  await watch.start();
  await watch.until('bench-light', (s) => s.n === 0, 30_000); // the gateway's first sync is done
  return {
    server,
    gateway,
    app,
    watch,
    devices,
    load,
    commands,
    close: async () => {
      await watch.stop();
      await app.close();
      await devices.endAsync(true);
      await load.endAsync(true);
      await gateway.stop();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 1;

async function downlink(home: Home, gapMs: () => number): Promise<number> {
  const n = (counter += 1);
  await sleep(gapMs());
  const t0 = performance.now();
  await home.app.setState('bench-light', { state: n % 2 ? 'ON' : 'OFF', n });
  const deadline = t0 + SAMPLE_TIMEOUT_MS;
  while (!home.commands.has(n)) {
    if (performance.now() > deadline) throw new Error(`no command for sample ${n}`);
    await sleep(1);
  }
  return (home.commands.get(n) ?? 0) - t0;
}

async function uplinkCritical(home: Home, gapMs: () => number): Promise<number> {
  const n = (counter += 1);
  await sleep(gapMs());
  const arrived = home.watch.until('bench-lock', (s) => s.n === n, SAMPLE_TIMEOUT_MS);
  const t0 = performance.now();
  await home.devices.publishAsync('devices/bench-lock/state', JSON.stringify({ lock_state: n % 2 ? 'locked' : 'unlocked', n }), { qos: 1 });
  return (await arrived) - t0;
}

/** One round: five sensors each publish once at a random moment of a second; five samples. */
async function uplinkOrdinaryRound(home: Home): Promise<number[]> {
  return Promise.all(
    Array.from({ length: ORDINARY_PER_ROUND }, async (_, k) => {
      const n = (counter += 1);
      await sleep(Math.random() * 1000);
      const arrived = home.watch.until(`bench-temp-${k}`, (s) => s.temperature === n, SAMPLE_TIMEOUT_MS);
      const t0 = performance.now();
      await home.devices.publishAsync(`devices/bench-temp-${k}/state`, JSON.stringify({ temperature: n }), { qos: 1 });
      return (await arrived) - t0;
    }),
  );
}

async function sampleAll(home: Home, mode: Mode, phase: string, samples: number, figures: Figures): Promise<void> {
  const gap = mode.name === 'polling' ? () => Math.random() * 2000 : () => 100 + Math.random() * 500;
  const take = async (what: string, one: () => Promise<number>): Promise<void> => {
    const values: number[] = [];
    for (let i = 0; i < samples; i += 1) values.push(await one());
    figures.set(`${what}_${phase}_${mode.name}`, values);
  };
  await take('downlink', () => downlink(home, gap));
  await take('uplink_critical', () => uplinkCritical(home, gap));
  const ordinary: number[] = [];
  while (ordinary.length < samples) ordinary.push(...(await uplinkOrdinaryRound(home)));
  figures.set(`uplink_ordinary_${phase}_${mode.name}`, ordinary);
}

/** Upstream bytes a day and pushes a second under the reference load alone, over `seconds`. */
async function upstream(home: Home, mode: Mode, seconds: number): Promise<void> {
  const [bytes0, received0, pushes0] = await Promise.all(['sync_bytes_sent_total', 'sync_bytes_received_total', 'sync_pushes_total'].map((m) => home.gateway.metric(m)));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const [bytes1, received1, pushes1] = await Promise.all(['sync_bytes_sent_total', 'sync_bytes_received_total', 'sync_pushes_total'].map((m) => home.gateway.metric(m)));
  const s = (performance.now() - t0) / 1000;
  const perDay = (v: number): number => (v / s) * 86_400 / 1e6;
  figure(`gateway_upstream_per_day_reference_load_${mode.name}`, perDay((bytes1 ?? 0) - (bytes0 ?? 0)), 'MB', 1);
  figure(`gateway_downstream_per_day_reference_load_${mode.name}`, perDay((received1 ?? 0) - (received0 ?? 0)), 'MB', 1);
  figure(`gateway_pushes_per_second_reference_load_${mode.name}`, ((pushes1 ?? 0) - (pushes0 ?? 0)) / s, '/s', 2);
}

async function runMode(mode: Mode, options: GatewayBenchOptions, figures: Figures, latency: boolean): Promise<void> {
  const home = await startHome(mode);
  try {
    if (latency) await sampleAll(home, mode, 'idle', options.samples, figures);
    const stop = new AbortController();
    const loading = referenceLoad(home.load, stop.signal);
    await sleep(5_000); // the load's devices exist and sync before anything is measured
    try {
      if (latency) await sampleAll(home, mode, 'load', options.samples, figures);
      await upstream(home, mode, options.bytesSeconds);
    } finally {
      stop.abort();
      await loading;
    }
  } finally {
    await home.close();
  }
}

function report(figures: Figures): void {
  for (const [name, values] of figures) {
    figure(`gateway_${name}_p50`, percentile(values, 50), 'ms', 1);
    figure(`gateway_${name}_p99`, percentile(values, 99), 'ms', 1);
    figure(`gateway_${name}_max`, Math.max(...values), 'ms', 1);
    figure(`gateway_${name}_samples`, values.length, '');
  }
  for (const [name, values] of figures) {
    if (!name.endsWith('_live')) continue;
    const base = figures.get(`${name.slice(0, -'_live'.length)}_polling`);
    if (base === undefined) continue;
    figure(`gateway_${name.slice(0, -'_live'.length)}_p99_polling_over_live`, percentile(base, 99) / Math.max(0.001, percentile(values, 99)), 'x', 1);
  }
}

export async function runGatewayLatencyBench(options: GatewayBenchOptions): Promise<void> {
  const figures: Figures = new Map();
  await runMode(LIVE, options, figures, true);
  await runMode(POLLING, options, figures, true);
  report(figures);
  await runMode(LIVE_2S, options, figures, false);
}

/**
 * The soak (docs/testing.md §The soak): a real server, the gateway as a real child process, real MQTT devices and a
 * second app client, with faults injected at random for N minutes — kill -9 of the gateway (at a random moment or at an
 * armed sync phase), server restarts, latency, bandwidth caps, black holes, connection resets — then healing,
 * convergence and the oracle (oracle.ts): every PUBACKed state on the server, nothing applied twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../log.js';
import { createSyncServer, parseServerConfig, type SyncServer } from '../server/index.js';
import { AppWriter } from './app-writer.js';
import { startChaosProxy, type ChaosProxy, type NetFault } from './chaos-proxy.js';
import { startGatewayProcess, type GatewayProcess } from './daemon.js';
import { DeviceFleet } from './devices.js';
import { AckLog, gatewayCounters, maxApplications, serverCounters } from './oracle.js';

export interface SoakOptions {
  readonly minutes: number;
  readonly devices: number;
  /** Pause between a device's PUBACK and its next state. */
  readonly intervalMs: number;
  readonly log: (line: string) => void;
  /** Keep the work dir (server + gateway databases, gateway log) even when nothing was lost. */
  readonly keep?: boolean;
}

export type SoakSummary = Record<string, number | string>;

const HOME = 'home-soak';
const PHASES = ['after_request', 'during_delta_apply', 'after_push_result', 'before_ack'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)] as T;
const between = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));

/** A free TCP port on 127.0.0.1 (the gateway child keeps one MQTT port across restarts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

class Soak {
  readonly dir = mkdtempSync(join(tmpdir(), 'ib-soak-'));
  readonly serverDir = join(this.dir, 'server');
  readonly gatewayDir = join(this.dir, 'gateway');
  readonly ack = new AckLog();
  readonly counts = { faults_injected: 0, kills: 0, fault_point_kills: 0, server_restarts: 0, net_faults: 0, start_retries: 0 };
  readonly rss: number[] = [];
  server!: SyncServer;
  serverUrl = '';
  proxy!: ChaosProxy;
  gateway: GatewayProcess | undefined;
  mqttPort = 0;
  creds!: { client_id: string; client_secret: string };
  readonly logLines: string[] = [];

  constructor(readonly options: SoakOptions) {}

  async startServer(): Promise<void> {
    const config = parseServerConfig({
      host: '127.0.0.1', port: 0, dataDir: this.serverDir, log: { level: 'silent' }, rateLimit: { ratePerSecond: 10_000, burst: 10_000 },
    });
    this.server = createSyncServer({ config, logger: silentLogger() });
    this.serverUrl = (await this.server.listen()).url;
  }

  /** Starts the gateway child; a start that times out (an overloaded host) is retried twice before giving up. */
  async startGateway(fault?: string): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#startGatewayOnce(fault);
        return;
      } catch (err) {
        if (attempt >= 3) throw err;
        this.counts.start_retries += 1;
        this.options.log(`soak: gateway start failed (${(err as Error).message}); retrying`);
      }
    }
  }

  async #startGatewayOnce(fault?: string): Promise<void> {
    this.gateway = await startGatewayProcess({
      dataDir: this.gatewayDir, mqttPort: this.mqttPort, serverUrl: this.proxy.url,
      clientId: this.creds.client_id, clientSecret: this.creds.client_secret, ...(fault === undefined ? {} : { fault }),
      onLine: (line) => {
        if (this.logLines.push(line) > 2000) this.logLines.splice(0, 1000);
      },
    });
  }

  /** One random fault, held for a moment, then healed. */
  async injectFault(): Promise<void> {
    this.counts.faults_injected += 1;
    const kind = pick(['kill9', 'kill9', 'fault_point', 'server_restart', 'net', 'net', 'net', 'reset_all']);
    if (kind === 'kill9') {
      await this.gateway?.kill9();
      this.counts.kills += 1;
      await this.startGateway();
    } else if (kind === 'fault_point') {
      await this.gateway?.kill9();
      this.counts.kills += 1;
      await this.startGateway(pick(PHASES));
      const died = await Promise.race([(this.gateway?.exited ?? Promise.resolve({ signal: null })).then((e) => e.signal === 'SIGKILL'), sleep(8000).then(() => false)]);
      if (died) this.counts.fault_point_kills += 1;
      else await this.gateway?.kill9();
      this.counts.kills += 1;
      await this.startGateway();
    } else if (kind === 'server_restart') {
      this.counts.server_restarts += 1;
      if (Math.random() < 0.5) this.server.destroy();
      else await this.server.close();
      await sleep(between(200, 1500));
      await this.startServer();
      this.proxy.setTarget(this.serverUrl);
    } else if (kind === 'reset_all') {
      this.counts.net_faults += 1;
      this.proxy.resetAll();
    } else {
      this.counts.net_faults += 1;
      const faults: NetFault[] = [
        { kind: 'latency', ms: between(20, 400) },
        { kind: 'bandwidth', bytesPerSecond: between(2_000, 50_000) },
        { kind: 'blackhole' },
        { kind: 'resets', maxBytes: between(100, 4000) },
      ];
      this.proxy.fault = pick(faults);
      await sleep(between(500, 4000));
      this.proxy.resetAll();
      this.proxy.fault = { kind: 'clean' };
    }
  }

  /** Heals everything and waits until the server holds every acknowledged state and equals the gateway store. */
  async converge(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const onServer = serverCounters(this.serverDir, HOME);
      const inStore = gatewayCounters(this.gatewayDir);
      const same = [...inStore].every(([d, n]) => onServer.get(d) === n);
      if (same && this.ack.missingFrom(onServer).lost === 0) return true;
      await sleep(250);
    }
    return false;
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakSummary> {
  const soak = new Soak(options);
  const started = Date.now();
  await soak.startServer();
  soak.creds = await soak.server.addClient(HOME);
  const appCreds = await soak.server.addClient(HOME);
  const app = new AppWriter({ serverUrl: () => soak.serverUrl, clientId: appCreds.client_id, clientSecret: appCreds.client_secret });
  soak.proxy = await startChaosProxy(soak.serverUrl);
  soak.mqttPort = await freePort();
  // Never leave a gateway child behind, whatever ends this process.
  process.once('exit', () => soak.gateway?.proc.kill('SIGKILL'));
  await soak.startGateway();
  const fleet = new DeviceFleet({ url: () => `mqtt://127.0.0.1:${soak.mqttPort}`, devices: options.devices, ack: soak.ack, intervalMs: options.intervalMs });
  fleet.start();
  options.log(`soak: ${options.minutes} min, ${options.devices} devices, work dir ${soak.dir}`);
  const deadline = started + options.minutes * 60_000;
  let lastReport = Date.now();
  while (Date.now() < deadline) {
    await sleep(between(1000, 3000));
    if (Date.now() >= deadline) break;
    const rss = soak.gateway?.rssMb();
    if (rss !== undefined) soak.rss.push(rss);
    await soak.injectFault();
    void app.write(`app-${between(0, 9)}`, { counter: between(0, 1000), by: 'app' }, Date.now());
    // A stale edit of a gateway device (an hour old) must lose to the gateway's states (seed §Conflict Resolution).
    void app.write(pick(fleet.deviceIds()), { counter: -1, by: 'stale-app' }, Date.now() - 3_600_000);
    if (Date.now() - lastReport > 60_000) {
      lastReport = Date.now();
      options.log(`soak: ${Math.round((Date.now() - started) / 1000)} s, acknowledged ${soak.ack.count}, faults ${soak.counts.faults_injected}`);
    }
  }
  soak.proxy.fault = { kind: 'clean' };
  await fleet.stop();
  const converged = await soak.converge(90_000);
  const onServer = serverCounters(soak.serverDir, HOME);
  const loss = soak.ack.missingFrom(onServer);
  const storeLoss = soak.ack.missingFrom(gatewayCounters(soak.gatewayDir));
  const twice = maxApplications(soak.serverDir);
  await soak.gateway?.stop();
  await soak.server.close();
  await soak.proxy.close();
  for (const d of loss.details.slice(0, 20)) options.log(`lost: ${d}`);
  const failed = loss.lost > 0 || twice > 1 || !converged;
  if (failed) for (const line of soak.logLines.slice(-40)) options.log(`gateway log: ${line}`);
  if (failed || options.keep) options.log(`work dir kept: ${soak.dir}`);
  else rmSync(soak.dir, { recursive: true, force: true });
  return {
    duration_s: Math.round((Date.now() - started) / 1000),
    devices: options.devices,
    ...soak.counts,
    app_writes: app.writes,
    messages: fleet.published,
    acknowledged: loss.acknowledged,
    on_server: loss.onServer,
    lost_in_store: storeLoss.lost,
    max_applications: twice,
    converged: converged ? 'yes' : 'no',
    gateway_rss_mb_first: soak.rss[0] ?? 'n/a',
    gateway_rss_mb_max: soak.rss.length > 0 ? Math.max(...soak.rss) : 'n/a',
    gateway_rss_mb_last: soak.rss.at(-1) ?? 'n/a',
    lost: loss.lost,
  };
}

/**
 * `demo`: the project's server, the gateway and ~30 simulated devices in one process. Says how long it runs, shows
 * progress on one line every few seconds, an offline spell (the server stops, the gateway backs off, goes offline and
 * buffers) and its recovery, a change made in a phone app reaching a light, and ends by comparing what the server and
 * the gateway hold. Its temporary directory is removed at the end (not a --data-dir given by the user); Ctrl-C ends
 * it early, cleanly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { loadGatewayConfig, type GatewayConfig } from '../config/gateway-config.js';
import { compareSnapshots, gatewaySnapshot, serverSnapshot } from '../daemon/convergence.js';
import { GatewayDaemon } from '../daemon/gateway-daemon.js';
import { createLogger, type Logger } from '../log.js';
import { createSyncServer, parseServerConfig, type SyncServer } from '../server/index.js';
import { connectApp } from '../sim/app-client.js';
import { DeviceSimulator } from '../sim/simulator.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const HELP = `usage: inbetweenies-gateway demo [--seconds N] [--offline-seconds N] [--data-dir DIR]

Starts the sync server, the gateway and ~30 simulated devices on free ports; runs for N seconds (default 60) with an
offline spell of --offline-seconds (default 20) in the middle; ends by checking that server and gateway agree.
Progress every 5 s; Ctrl-C ends it early. Without --data-dir it works in a temporary directory, removed at the end.`;

const HOME = 'demo-home';
const PROGRESS_EVERY_MS = 5000;
/** What the phone app sets on a light through the server. */
const LIGHT_OFF = { state: 'OFF' } as const;
/** How long the demo waits for the simulated light to get the app's command. */
const COMMAND_WAIT_MS = 10_000;

type Say = (msg: string) => void;

async function startServer(dataDir: string, port: number, logger: Logger): Promise<{ server: SyncServer; url: string; port: number }> {
  const config = parseServerConfig({ host: '127.0.0.1', port, dataDir, log: { level: 'warn' } });
  const server = createSyncServer({ config, logger: logger.child({ component: 'server' }) });
  const address = await server.listen();
  return { server, url: address.url, port: address.port };
}

/** Demo timings: quick cycles, and no scheduled jobs (nothing for them to do in a minute). */
function demoConfig(config: GatewayConfig): GatewayConfig {
  const off = { ...config.jobs };
  return {
    ...config,
    sync: { ...config.sync, minIntervalSeconds: 1, maxIntervalSeconds: 5, offlineProbeSeconds: 2, maxRetries: 3 },
    jobs: { ...off, reconcile: { ...off.reconcile, enabled: false }, maintenance: { ...off.maintenance, enabled: false }, pruneConflicts: { ...off.pruneConflicts, enabled: false } },
  };
}

export async function demoCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { seconds: { type: 'string' }, 'offline-seconds': { type: 'string' }, 'data-dir': { type: 'string' } });
    const seconds = Number(values.seconds ?? 60);
    const offline = Number(values['offline-seconds'] ?? 20);
    if (!(seconds >= 10)) throw new UsageError(`--seconds: expected a number ≥ 10, got ${JSON.stringify(values.seconds)}`);
    if (!(offline >= 0 && offline < seconds)) throw new UsageError(`--offline-seconds: expected 0 ≤ n < --seconds, got ${JSON.stringify(values['offline-seconds'])}`);
    const temporary = values['data-dir'] === undefined;
    const root = values['data-dir'] ?? mkdtempSync(join(tmpdir(), 'ib-demo-'));
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      return await runDemo({ root, seconds, offline, signal: stop.signal });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (temporary) rmSync(root, { recursive: true, force: true });
    }
  });
}

interface DemoRun {
  readonly root: string;
  readonly seconds: number;
  readonly offline: number;
  readonly signal: AbortSignal;
}

async function runDemo(run: DemoRun): Promise<number> {
  const { root, seconds, offline, signal } = run;
  const logger = createLogger({ level: 'info', name: 'demo' });
  const say: Say = (msg) => logger.info(`DEMO ${msg}`);
  const onlineFirst = Math.max(5, Math.floor((seconds - offline) / 2));
  const onlineAfter = Math.max(0, seconds - onlineFirst - offline);
  const plan = offline > 0 ? `${onlineFirst} s online, ${offline} s with the server stopped, ${onlineAfter} s online again` : 'all online';
  say(`runs ${seconds} s: ${plan}, then a check that both sides agree (Ctrl-C ends it early)`);
  /** Sleeps, or returns false at once when Ctrl-C ended the demo. */
  const wait = (ms: number): Promise<boolean> => sleepFor(ms, true, { signal }).catch(() => false);

  let { server, url, port } = await startServer(join(root, 'server'), 0, logger);
  const creds = await server.addClient(HOME);
  const config = demoConfig(
    loadGatewayConfig({ flags: { dataDir: join(root, 'gateway'), mqttHost: '127.0.0.1', mqttPort: 0, httpPort: 0, serverUrl: url, clientId: creds.client_id, clientSecret: creds.client_secret } }),
  );
  const daemon = new GatewayDaemon({ config, logger: logger.child({ component: 'gateway' }) });
  const mqtt = await daemon.start();
  const sim = new DeviceSimulator({ url: `mqtt://127.0.0.1:${mqtt.port}`, logger, messagesPerSecond: 5 });
  await sim.start();
  say(`sync server on ${url}, gateway MQTT on ${mqtt.host}:${mqtt.port}, ${sim.devices.length} simulated devices; data in ${root}`);
  say(`status page: ${daemon.httpUrl ?? '-'}/ (open it in a browser to watch the devices)`);
  const started = Date.now();

  const progress = setInterval(() => {
    const st = daemon.status();
    const pushed = st.scheduler?.lastReport?.pushed ?? 0;
    say(`${Math.round((Date.now() - started) / 1000)}/${seconds} s: sync ${st.scheduler?.mode ?? '-'}, ${st.pending} pending, last cycle pushed ${pushed}, ${sim.stats.sent} device messages`);
  }, PROGRESS_EVERY_MS);
  let converged = false;
  try {
    if (!(await wait(Math.floor(onlineFirst / 2) * 1000))) return 130;
    // Downlink: a phone app of the same home turns a light off through the server; the gateway pulls the change,
    // publishes it on devices/light-1/set, the simulated light obeys and reports, and nothing is echoed upstream.
    const { light, delayMs } = await turnLightOffFromApp(url, server, sim, logger);
    const arrived = delayMs === undefined ? `did not arrive within ${COMMAND_WAIT_MS / 1000} s` : `after ${Math.round(delayMs)} ms`;
    say(`app set ${light} ${JSON.stringify(LIGHT_OFF)} → devices/${light}/set ${arrived} (a phone app, through the server; the gateway holds a live wait)`);
    if (!(await wait((onlineFirst - Math.floor(onlineFirst / 2)) * 1000))) return 130;
    if (offline > 0) {
      say(`offline spell: the server stops for ${offline} s; the gateway keeps acknowledging devices and buffers their changes`);
      await server.close();
      const waited = await wait(offline * 1000);
      ({ server, url, port } = await startServer(join(root, 'server'), port, logger));
      if (!waited) return 130;
      say('the server is back on the same port; the gateway recovers by itself');
    }
    if (!(await wait(onlineAfter * 1000))) return 130;
    await sim.stop();
    clearInterval(progress);
    say('simulator stopped; final sync');
    await daemon.syncNow();
    await daemon.syncNow();
    converged = await reportConvergence(daemon, server, sim, say);
    return converged ? 0 : 1;
  } finally {
    clearInterval(progress);
    await sim.stop();
    await daemon.stop();
    await server.close();
    if (signal.aborted) say('ended early (Ctrl-C)');
  }
}

/**
 * Downlink: a phone app of the same home turns a light that is on (light-1 if none is) off through the server, and
 * the delay is measured from the app's push to the simulated light receiving the command on devices/<id>/set.
 */
async function turnLightOffFromApp(url: string, server: SyncServer, sim: DeviceSimulator, logger: Logger): Promise<{ light: string; delayMs: number | undefined }> {
  const lights = sim.devices.filter((d) => d.kind === 'light');
  const light = lights.find((d) => d.state.state === 'ON') ?? lights.find((d) => d.id === 'light-1') ?? lights[0];
  if (!light) throw new Error('the simulated home has no light');
  const app = await connectApp(url, await server.addClient(HOME), logger);
  try {
    const obeyed = sim.nextCommand(light.id, (attrs) => attrs.state === LIGHT_OFF.state, COMMAND_WAIT_MS);
    const pushedAt = performance.now();
    await app.setState(light.id, { ...light.state, ...LIGHT_OFF });
    const at = await obeyed;
    return { light: light.id, delayMs: at === undefined ? undefined : at - pushedAt };
  } finally {
    await app.close();
  }
}

/** The closing check: does the server hold exactly what the gateway holds? */
async function reportConvergence(daemon: GatewayDaemon, server: SyncServer, sim: DeviceSimulator, say: Say): Promise<boolean> {
  const store = daemon.store;
  if (!store) throw new Error('gateway store closed early');
  const result = compareSnapshots(gatewaySnapshot(store), serverSnapshot(await server.entities(HOME)));
  const counts = `${result.gatewayEntities} entities on the gateway, ${result.serverEntities} on the server; ${sim.stats.sent} device messages, ${sim.stats.commands} command(s) obeyed`;
  if (result.converged) say(`server and gateway hold the same state: ${counts}`);
  else say(`server and gateway DIFFER: ${result.missingOnServer.length} missing on the server, ${result.extraOnServer.length} extra, ${result.different.length} different; ${counts}`);
  return result.converged;
}

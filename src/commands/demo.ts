/**
 * `demo` (issue 3 item 9): the project's server, the gateway and ~30 simulated devices in one process. Shows sync
 * cycles as they run, an offline spell (the server stops, the gateway backs off, goes offline and buffers) and its
 * recovery, and ends by comparing what the server and the gateway hold.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { compareSnapshots, gatewaySnapshot, serverSnapshot } from '../daemon/convergence.js';
import { GatewayDaemon } from '../daemon/gateway-daemon.js';
import { createLogger, type Logger } from '../log.js';
import { createSyncServer, parseServerConfig, type SyncServer } from '../server/index.js';
import { connectApp } from '../sim/app-client.js';
import { DeviceSimulator } from '../sim/simulator.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const HELP = `usage: inbetweenies-gateway demo [--seconds N] [--offline-seconds N] [--data-dir DIR]

Starts the sync server, the gateway and ~30 simulated devices on free ports; runs for N seconds (default 60) with an
offline spell of --offline-seconds (default 20) in the middle; ends by checking that server and gateway agree.`;

const HOME = 'demo-home';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startServer(dataDir: string, port: number, logger: Logger): Promise<{ server: SyncServer; url: string; port: number }> {
  const config = parseServerConfig({ host: '127.0.0.1', port, dataDir, log: { level: 'warn' } });
  const server = createSyncServer({ config, logger: logger.child({ component: 'server' }) });
  const address = await server.listen();
  return { server, url: address.url, port: address.port };
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { seconds: { type: 'string' }, 'offline-seconds': { type: 'string' }, 'data-dir': { type: 'string' } });
  return withUsage(HELP, Boolean(values.help), async () => {
    const seconds = Number(values.seconds ?? 60);
    const offline = Number(values['offline-seconds'] ?? 20);
    if (!(seconds >= 10)) throw new UsageError(`--seconds: expected a number ≥ 10, got ${JSON.stringify(values.seconds)}`);
    if (!(offline >= 0 && offline < seconds)) throw new UsageError(`--offline-seconds: expected 0 ≤ n < --seconds, got ${JSON.stringify(values['offline-seconds'])}`);
    const root = values['data-dir'] ?? mkdtempSync(join(tmpdir(), 'ib-demo-'));
    const logger = createLogger({ level: 'info', name: 'demo' });
    const say = (msg: string, extra: Record<string, unknown> = {}): void => logger.info({ demo: true, ...extra }, `DEMO ${msg}`);

    let { server, url, port } = await startServer(join(root, 'server'), 0, logger);
    const creds = server.addClient(HOME);
    say('sync server up', { url, home: HOME, client_id: creds.client_id });
    const config = loadGatewayConfig({
      flags: { dataDir: join(root, 'gateway'), mqttHost: '127.0.0.1', mqttPort: 0, serverUrl: url, clientId: creds.client_id, clientSecret: creds.client_secret },
    });
    const tuned = { ...config, sync: { ...config.sync, minIntervalSeconds: 1, maxIntervalSeconds: 5, offlineProbeSeconds: 2, maxRetries: 3 } };
    const daemon = new GatewayDaemon({ config: tuned, logger: logger.child({ component: 'gateway' }) });
    const mqtt = await daemon.start();
    say('gateway up', { mqtt: `${mqtt.host}:${mqtt.port}`, store: tuned.dataDir });
    const sim = new DeviceSimulator({ url: `mqtt://127.0.0.1:${mqtt.port}`, logger, messagesPerSecond: 5 });
    await sim.start();
    say('simulator up', { devices: sim.devices.length });

    const onlineFirst = Math.max(5, Math.floor((seconds - offline) / 2));
    const report = setInterval(() => {
      const st = daemon.status();
      say('status', { mode: st.scheduler?.mode, pending: st.pending, lastPushed: st.scheduler?.lastReport?.pushed, sent: sim.stats.sent });
    }, 5000);
    await sleep(Math.floor(onlineFirst / 2) * 1000);
    // Downlink: a phone app of the same home turns a light off through the server; the gateway pulls the change,
    // publishes it on devices/light-1/set, the simulated light obeys and reports, and nothing is echoed upstream.
    await turnLightOffFromApp(url, server, sim, logger);
    say('a phone app turned light-1 off on the server; watch for "device obeyed a command"');
    await sleep((onlineFirst - Math.floor(onlineFirst / 2)) * 1000);
    if (offline > 0) {
      say(`offline spell: stopping the server for ${offline} s; the gateway keeps acknowledging and buffering`);
      await server.close();
      await sleep(offline * 1000);
      ({ server, url, port } = await startServer(join(root, 'server'), port, logger));
      say('server back on the same port; the gateway recovers by itself', { url });
    }
    await sleep(Math.max(0, seconds - onlineFirst - offline) * 1000);
    await sim.stop();
    clearInterval(report);
    say('simulator stopped; final sync');
    await daemon.syncNow();
    await daemon.syncNow();
    const converged = reportConvergence(daemon, server, sim, say);
    await daemon.stop();
    await server.close();
    return converged ? 0 : 1;
  });
}

/** Downlink: a phone app of the same home turns light-1 off through the server. */
async function turnLightOffFromApp(url: string, server: SyncServer, sim: DeviceSimulator, logger: Logger): Promise<void> {
  const app = await connectApp(url, server.addClient(HOME), logger);
  const light = sim.devices.find((d) => d.id === 'light-1');
  await app.setState('light-1', { ...(light?.state ?? {}), state: 'OFF', brightness: 0 });
  await app.close();
}

/** The closing check: does the server hold exactly what the gateway holds? */
function reportConvergence(daemon: GatewayDaemon, server: SyncServer, sim: DeviceSimulator, say: (msg: string, extra?: Record<string, unknown>) => void): boolean {
  const store = daemon.store;
  if (!store) throw new Error('gateway store closed early');
  const result = compareSnapshots(gatewaySnapshot(store), serverSnapshot(server.entities(HOME)));
  say(result.converged ? 'server and gateway hold the same state' : 'server and gateway DIFFER', {
    gatewayEntities: result.gatewayEntities,
    serverEntities: result.serverEntities,
    missingOnServer: result.missingOnServer.length,
    extraOnServer: result.extraOnServer.length,
    different: result.different.length,
    messagesSent: sim.stats.sent,
    commandsObeyed: sim.stats.commands,
  });
  return result.converged;
}

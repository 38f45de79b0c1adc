/**
 * A home for the live-sync tests: the real server, the real gateway daemon (its poll interval forced to 5 minutes, so
 * only the live path can bring a change in time), a phone app of the same home, and a device as a real MQTT client
 * that records the commands it gets on devices/+/set.
 */
import type { MqttClient } from 'mqtt';
import type { GatewayConfig } from '../../src/config/gateway-config.js';
import type { ServerConfigInput } from '../../src/server/index.js';
import type { SchedulerStatus } from '../../src/sync/index.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startTestServer, type TestServer, sqliteStoreOf } from '../helpers/server.js';

export const HOME = 'home-live';
/** Every poll of these tests is 5 minutes away: a change that arrives in seconds came by the live path. */
export const POLL_SECONDS = 300;

export interface Command {
  readonly topic: string;
  readonly body: Record<string, unknown>;
  readonly at: number;
}

export interface LiveHome {
  readonly server: TestServer;
  readonly gateway: TestGateway;
  readonly app: AppClient;
  readonly device: MqttClient;
  readonly commands: Command[];
  /** The entity_state the server holds for `id`. */
  serverState(id: string): Record<string, unknown> | undefined;
  status(): SchedulerStatus;
  close(): Promise<void>;
}

export type SyncTune = Partial<GatewayConfig['sync']>;

export interface LiveHomeOptions {
  readonly serverConfig?: ServerConfigInput;
  /** The server to use now (the tests that restart it), instead of a fresh one; it is not closed by close(). */
  readonly server?: () => TestServer;
  /** The URL the gateway talks to (a proxy in front of the server), default the server's. */
  readonly gatewayUrl?: (server: TestServer) => string;
  readonly sync?: SyncTune;
  readonly tune?: (config: GatewayConfig) => GatewayConfig;
}

/** The gateway's config: polls 5 minutes apart, live waits on, the control listener on port 0. */
export function liveConfig(sync: SyncTune = {}): (config: GatewayConfig) => GatewayConfig {
  return (config) => ({
    ...config,
    http: { ...config.http, port: 0 },
    sync: { ...config.sync, minIntervalSeconds: POLL_SECONDS, maxIntervalSeconds: POLL_SECONDS, offlineProbeSeconds: 0.2, ...sync },
  });
}

export async function startLiveHome(options: LiveHomeOptions = {}): Promise<LiveHome> {
  let own: TestServer | undefined;
  let current = options.server;
  if (current === undefined) {
    const started = await startTestServer({ hmac: { required: true }, ...options.serverConfig });
    own = started;
    current = () => started;
  }
  const serverNow = current;
  const server = serverNow();
  const creds = await server.addClient(HOME);
  const app = await connectApp(server.url, await server.addClient(HOME));
  const base = liveConfig(options.sync);
  const gateway = await startTestGateway({
    serverUrl: options.gatewayUrl?.(server) ?? server.url,
    clientId: creds.client_id,
    clientSecret: creds.client_secret,
    tune: (c) => (options.tune ?? ((x) => x))(base(c)),
  });
  const device = await gateway.connect('live-device');
  const commands: Command[] = [];
  device.on('message', (topic, payload) => commands.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown>, at: performance.now() }));
  await device.subscribeAsync('devices/+/set', { qos: 1 });
  const status = (): SchedulerStatus => {
    const s = gateway.daemon.status().scheduler;
    if (s === null) throw new Error('sync is not configured');
    return s;
  };
  return {
    get server() {
      return serverNow();
    },
    gateway,
    app,
    device,
    commands,
    status,
    serverState: (id) => {
      const row = sqliteStoreOf(serverNow().server).entities(HOME).find((e) => e.entity_type === 'entity_state' && e.entity_id === id && !e.deleted);
      const state = row?.data.state;
      return isRecord(state) ? state : undefined;
    },
    close: async () => {
      await app.close();
      await gateway.close();
      await own?.close();
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Publishes a device's meta and first state, and waits until the server holds that state. */
export async function addDevice(home: LiveHome, id: string, type: string, state: Record<string, unknown>): Promise<void> {
  await home.device.publishAsync(`devices/${id}/meta`, JSON.stringify({ name: id, type, room: 'Hall' }), { qos: 1, retain: true });
  await home.device.publishAsync(`devices/${id}/state`, JSON.stringify(state), { qos: 1 });
  await waitFor(() => home.serverState(id)?.[Object.keys(state)[0] ?? ''] === Object.values(state)[0], 10_000, `${id} on the server`);
}

/** Waits until the gateway holds a live wait (the server counts it too). */
export async function untilHeld(home: LiveHome, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => home.status().via === 'live' && home.status().live.heldSince !== null && home.server.server.liveStats().held >= 1, timeoutMs, 'a held live wait');
}

/** Resolves with ms from now until `predicate` holds (checked every 5 ms), or rejects after `timeoutMs`. */
export async function timeUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - started;
}

/** A real embedded broker with auth/ACL/limits, real ingest (native adapter) into a real SQLite file, real clients. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { ErrorWithSubackPacket, type IClientOptions, type ISubscriptionMap, type MqttClient } from 'mqtt';
import { createBrokerAuth, type BrokerAuthOptions } from '../../src/broker/auth.js';
import { createBroker, type Broker, type BrokerOptions } from '../../src/broker/index.js';
import { hashPassword } from '../../src/broker/password.js';
import { createIngest, createNativeAdapter, type Ingest } from '../../src/ingest/index.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { openStore, type GatewayStore } from '../../src/store/index.js';
import { openStoreFile } from '../helpers/store-file.js';

/** Cheap scrypt parameters so tests stay fast; the format is the production one. */
export const FAST_SCRYPT = { N: 1024, r: 8, p: 1 };

export async function user(username: string, password: string): Promise<{ username: string; passwordHash: string }> {
  return { username, passwordHash: await hashPassword(password, FAST_SCRYPT) };
}

export interface SecureHarness {
  readonly broker: Broker;
  readonly ingest: Ingest;
  readonly store: GatewayStore;
  readonly port: number;
  connect(options?: IClientOptions, url?: string): Promise<MqttClient>;
  /** A connect that is expected to fail; resolves with the CONNACK return code. */
  refusedCode(options: IClientOptions): Promise<number | undefined>;
  storedState(deviceId: string): Promise<Record<string, unknown> | undefined>;
  close(): Promise<void>;
}

export interface SecureHarnessOptions {
  readonly auth?: Omit<BrokerAuthOptions, 'logger'>;
  readonly broker?: Partial<Omit<BrokerOptions, 'host' | 'port' | 'logger' | 'auth'>>;
  readonly logger?: Logger;
}

export async function startSecureHarness(options: SecureHarnessOptions = {}): Promise<SecureHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'security-test-'));
  const logger = options.logger ?? silentLogger();
  const store = openStore({ path: join(dir, 'gateway.db'), logger });
  const auth = options.auth ? createBrokerAuth({ ...options.auth, logger }) : undefined;
  const broker = createBroker({ host: '127.0.0.1', port: 0, logger, ...(auth ? { auth } : {}), ...options.broker });
  const clock = { nowMicros: () => Date.now() * 1000 };
  const ingest = createIngest({ broker, store, logger, clock, adapters: [createNativeAdapter({ maxPayloadBytes: 1024 * 1024 })] });
  const { port } = await broker.start();
  ingest.start();
  const clients: MqttClient[] = [];
  return {
    broker,
    ingest,
    store,
    port,
    async connect(clientOptions = {}, url = `mqtt://127.0.0.1:${port}`) {
      const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...clientOptions });
      clients.push(client);
      return client;
    },
    async refusedCode(clientOptions) {
      const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...clientOptions });
      clients.push(client);
      return new Promise((resolve, reject) => {
        client.once('connect', () => reject(new Error('connect was accepted')));
        client.once('error', (err) => resolve((err as Error & { code?: number }).code));
      });
    },
    async storedState(deviceId) {
      await ingest.flush();
      const db = openStoreFile(store.path);
      const row = db
        .prepare<[string], { data: string }>("SELECT data FROM entities WHERE entity_type = 'entity_state' AND entity_id = ?")
        .get(deviceId);
      db.close();
      if (!row) return undefined;
      const data = JSON.parse(row.data) as { state?: Record<string, unknown> };
      return data.state;
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await ingest.stop();
      await broker.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Messages a client receives, by topic. */
export function collect(client: MqttClient): Array<{ topic: string; payload: string }> {
  const got: Array<{ topic: string; payload: string }> = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  return got;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** SUBACK return codes in request order (mqtt.js rejects a SUBACK that contains 0x80; the packet is on the error). */
export async function subackCodes(client: MqttClient, subscriptions: ISubscriptionMap): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(subscriptions);
    return granted.map((g) => g.qos);
  } catch (err) {
    if (!(err instanceof ErrorWithSubackPacket)) throw err;
    return err.packet.granted.map((g) => (typeof g === 'number' ? g : -1));
  }
}

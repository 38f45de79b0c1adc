/** Test harness: a real aedes broker on port 0, real ingest into a real SQLite file in a temp dir, real mqtt.js clients. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createBroker, type Broker } from '../../src/broker/index.js';
import { createIngest, createNativeAdapter, type Ingest, type IngestOptions } from '../../src/ingest/index.js';
import { silentLogger } from '../../src/log.js';
import type { Db } from '../../src/store/db.js';
import { openStore, type GatewayStore } from '../../src/store/index.js';
import type { StampClock } from '../../src/store/types.js';
import { openStoreFile } from '../helpers/store-file.js';

export interface Harness {
  readonly dir: string;
  readonly dbPath: string;
  readonly store: GatewayStore;
  readonly broker: Broker;
  readonly ingest: Ingest;
  readonly url: string;
  readonly clock: StampClock & { offsetMicros: number };
  /** A second, independent connection to the same file (what another process would see). */
  readonly reader: Db;
  connect(options?: IClientOptions): Promise<MqttClient>;
  close(): Promise<void>;
}

export type HarnessOptions = Partial<Omit<IngestOptions, 'broker' | 'store' | 'logger' | 'clock' | 'adapters'>> & {
  readonly maxPayloadBytes?: number;
};

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ingest-test-'));
  const dbPath = join(dir, 'gateway.db');
  const logger = silentLogger();
  const store = openStore({ path: dbPath, logger });
  const broker = createBroker({ host: '127.0.0.1', port: 0, logger, limits: { connectTimeoutMs: 500 } });
  const clock = { offsetMicros: 0, nowMicros: () => Date.now() * 1000 + clock.offsetMicros };
  const { maxPayloadBytes, ...ingestOptions } = options;
  const ingest = createIngest({
    broker,
    store,
    logger,
    clock,
    adapters: [createNativeAdapter({ maxPayloadBytes: maxPayloadBytes ?? 4096 })],
    ...ingestOptions,
  });
  const address = await broker.start();
  ingest.start();
  const url = `mqtt://127.0.0.1:${address.port}`;
  const reader = openStoreFile(dbPath);
  const clients: MqttClient[] = [];
  return {
    dir,
    dbPath,
    store,
    broker,
    ingest,
    url,
    clock,
    reader,
    async connect(clientOptions = {}) {
      const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...clientOptions });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await ingest.stop();
      await broker.stop();
      reader.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Row {
  data: string;
  updated_at: number;
  sync_id: string | null;
}

export function entity(db: Db, type: string, id: string): { data: Record<string, unknown>; updatedAt: number } | undefined {
  const row = db
    .prepare<[string, string], Row>('SELECT data, updated_at, sync_id FROM entities WHERE entity_type = ? AND entity_id = ?')
    .get(type, id);
  if (!row) return undefined;
  const data: unknown = JSON.parse(row.data);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('entity data is not an object');
  return { data: { ...data }, updatedAt: row.updated_at };
}

export interface OutboxView {
  client_sync_id: string;
  operation: string;
  critical: number;
  first_queued_at: number;
  updated_at: number;
  data: string;
}

export function outbox(db: Db, type: string, id: string): OutboxView[] {
  return db
    .prepare<[string, string], OutboxView>(
      'SELECT client_sync_id, operation, critical, first_queued_at, updated_at, data FROM outbox WHERE entity_type = ? AND entity_id = ?',
    )
    .all(type, id);
}

export async function waitFor(check: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

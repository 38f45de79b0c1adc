/** A gateway for end-to-end sync tests: a real SQLite file in a temp dir, the real sync client, ingest's local writes. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import type { ClientCredentials } from '../../src/server/index.js';
import { APPLY_LOCAL_UPDATES, type LocalUpdate, type LocalWriteCounts } from '../../src/ingest/local-writes.js';
import { openStore, type GatewayStore } from '../../src/store/index.js';
import type { DeviceCommand } from '../../src/store/types.js';
import { SyncClient, type FaultHook, type SyncClientConfig } from '../../src/sync/index.js';
import { openStoreFile, type RawDb } from '../helpers/store-file.js';

export interface PendingRow {
  readonly entityType: string;
  readonly entityId: string;
  readonly clientSyncId: string;
  readonly updatedAt: number;
}

export interface TestGateway {
  readonly dir: string;
  readonly store: GatewayStore;
  /** The test's own connection to the store file: reads, and rows a case sets up by hand. */
  readonly db: RawDb;
  readonly client: SyncClient;
  readonly commands: DeviceCommand[];
  state(deviceId: string, attributes: Record<string, unknown>): Promise<LocalWriteCounts>;
  /** Many states in one local write (one transaction). */
  states(states: ReadonlyArray<readonly [string, Record<string, unknown>]>): Promise<LocalWriteCounts>;
  meta(deviceId: string, name: string, room: string | null, type?: string): Promise<LocalWriteCounts>;
  /** The local entity_state's attributes of a device. */
  localState(deviceId: string): Record<string, unknown> | undefined;
  localSyncId(type: string, id: string): string | null | undefined;
  pending(): PendingRow[];
  close(): Promise<void>;
}

export function makeGateway(options: {
  url: string;
  creds: ClientCredentials;
  skewMs?: number;
  /** The gateway's wall clock (epoch ms); default Date.now() + skewMs. */
  now?: () => number;
  config?: Partial<SyncClientConfig>;
  faults?: FaultHook;
}): TestGateway {
  const dir = mkdtempSync(join(tmpdir(), 'ib-gw-'));
  const store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
  const db = openStoreFile(store.path, { writable: true });
  const skew = options.skewMs ?? 0;
  const now = options.now ?? ((): number => Date.now() + skew);
  const commands: DeviceCommand[] = [];
  const client = new SyncClient({
    serverUrl: options.url,
    clientId: options.creds.client_id,
    clientSecret: options.creds.client_secret,
    store,
    logger: silentLogger(),
    now,
    onDeviceCommands: (c) => commands.push(...c),
    ...(options.faults ? { faults: options.faults } : {}),
    ...options.config,
  });
  const write = (updates: readonly LocalUpdate[]): Promise<LocalWriteCounts> =>
    store.durable(APPLY_LOCAL_UPDATES, { updates, nowMicros: client.clock.nowMicros(), nowMs: now() });
  return {
    dir,
    store,
    db,
    client,
    commands,
    state: (deviceId, attributes) => write([{ kind: 'state', deviceId, attributes }]),
    states: (list) => write(list.map(([deviceId, attributes]) => ({ kind: 'state', deviceId, attributes }))),
    meta: (deviceId, name, room, type = 'light') => write([{ kind: 'meta', deviceId, name, room, type }]),
    localState: (deviceId) => {
      const row = db.prepare<[string], { data: string }>("SELECT data FROM entities WHERE entity_type = 'entity_state' AND entity_id = ? AND deleted = 0").get(deviceId);
      if (row === undefined) return undefined;
      const data = JSON.parse(row.data) as { state?: Record<string, unknown> };
      return data.state;
    },
    localSyncId: (type, id) =>
      db.prepare<[string, string], { sync_id: string | null }>('SELECT sync_id FROM entities WHERE entity_type = ? AND entity_id = ?').get(type, id)?.sync_id,
    pending: () =>
      db.prepare<[], { entity_type: string; entity_id: string; client_sync_id: string; updated_at: number }>(
        'SELECT entity_type, entity_id, client_sync_id, updated_at FROM outbox ORDER BY priority, first_queued_at',
      ).all().map((r) => ({ entityType: r.entity_type, entityId: r.entity_id, clientSyncId: r.client_sync_id, updatedAt: r.updated_at })),
    close: async () => {
      await client.destroy();
      db.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The server's view of one entity_state's attributes. */
export async function serverState(
  server: { entities(home: string): Promise<Array<{ entity_type: string; entity_id: string; data: Record<string, unknown> }>> },
  home: string,
  deviceId: string,
): Promise<Record<string, unknown> | undefined> {
  const entity = (await server.entities(home)).find((e) => e.entity_type === 'entity_state' && e.entity_id === deviceId);
  return entity?.data.state as Record<string, unknown> | undefined;
}

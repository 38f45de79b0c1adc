/**
 * Starts the real sync server on 127.0.0.1, port 0: on SQLite with its file in a fresh temp dir (removed on close),
 * or with `backend` POSTGRES on a fresh database of the run's private cluster (test/helpers/backends.ts). Overrides
 * are merged into the defaults (nested objects may be partial). `options.clock` injects the server's wall clock in
 * epoch ms (token expiry, signature windows, tombstone retention); `options.databaseUrl` starts another instance on
 * the database of a running one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../src/log.js';
import {
  openSyncServer,
  parseServerConfig,
  type ClientCredentials,
  type ServerConfigInput,
  type SyncServer,
} from '../../src/server/index.js';
import { mergeConfig } from '../../src/server/config.js';
import { SqliteStore } from '../../src/server/store/sqlite-store.js';
import type { ServerStore } from '../../src/server/store/index.js';
import { SQLITE, type Backend, type BackendName } from './backends.js';

export interface TestServer {
  readonly url: string;
  /** The metrics listener's URL when the config enables it. */
  readonly metricsUrl: string | undefined;
  readonly server: SyncServer;
  readonly backend: BackendName;
  readonly dataDir: string;
  /** The PostgreSQL database (postgres backend): another instance started with it serves the same homes. */
  readonly databaseUrl: string | undefined;
  /** Options that start a server on this one's store again (a restart, or a second instance on PostgreSQL). */
  readonly sameStore: TestServerOptions;
  /** Creates a client credential (default home `home-1`). */
  addClient(home?: string): Promise<ClientCredentials>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly clock?: () => number;
  readonly logger?: Logger;
  /** Reuse an existing data dir (e.g. to restart on the same file); it is then not removed on close. */
  readonly dataDir?: string;
  /** The store (default SQLite). */
  readonly backend?: Backend;
  /** PostgreSQL: this database instead of a fresh one (a second instance, a restart). */
  readonly databaseUrl?: string;
}

export async function startTestServer(
  overrides: ServerConfigInput = {},
  options: TestServerOptions = {},
): Promise<TestServer> {
  const backend = options.databaseUrl === undefined ? (options.backend ?? SQLITE) : undefined;
  const databaseUrl = options.databaseUrl ?? (await backend?.databaseUrl());
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ib-server-'));
  const database = databaseUrl === undefined ? {} : { database: { url: databaseUrl } };
  const config = parseServerConfig(
    mergeConfig({ log: { level: 'silent' } }, { ...overrides, host: '127.0.0.1', port: 0, dataDir, ...database }),
  );
  const server = await openSyncServer({
    config,
    logger: options.logger ?? silentLogger(),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const { url, metricsUrl } = await server.listen();
  let closed = false;
  return {
    url,
    metricsUrl,
    server,
    backend: databaseUrl === undefined ? 'sqlite' : 'postgres',
    dataDir,
    databaseUrl,
    sameStore: databaseUrl === undefined ? { dataDir } : { databaseUrl },
    addClient: (home = 'home-1') => server.addClient(home),
    close: async () => {
      if (closed) return;
      closed = true;
      await server.close();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The synchronous SQLite store underneath a server (tests of SQLite-only behaviour); throws on PostgreSQL. */
export function sqliteStoreOf(server: SyncServer): ServerStore {
  if (!(server.store instanceof SqliteStore)) throw new Error(`this test reads SQLite internals; the server runs on ${server.store.kind}`);
  return server.store.local;
}

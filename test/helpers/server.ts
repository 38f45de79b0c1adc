/**
 * Starts the real sync server on 127.0.0.1, port 0, with its SQLite file in a fresh temp dir (removed on close).
 * Overrides are merged into the defaults (nested objects may be partial). `options.clock` injects the server's wall
 * clock in epoch ms (token expiry, signature windows, tombstone retention).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../src/log.js';
import {
  createSyncServer,
  parseServerConfig,
  type ClientCredentials,
  type ServerConfigInput,
  type SyncServer,
} from '../../src/server/index.js';
import { mergeConfig } from '../../src/server/config.js';

export interface TestServer {
  readonly url: string;
  /** The metrics listener's URL when the config enables it. */
  readonly metricsUrl: string | undefined;
  readonly server: SyncServer;
  readonly dataDir: string;
  /** Creates a client credential (default home `home-1`). */
  addClient(home?: string): ClientCredentials;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly clock?: () => number;
  readonly logger?: Logger;
  /** Reuse an existing data dir (e.g. to restart on the same file); it is then not removed on close. */
  readonly dataDir?: string;
}

export async function startTestServer(
  overrides: ServerConfigInput = {},
  options: TestServerOptions = {},
): Promise<TestServer> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ib-server-'));
  const config = parseServerConfig(mergeConfig({ log: { level: 'silent' } }, { ...overrides, host: '127.0.0.1', port: 0, dataDir }));
  const server = createSyncServer({
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
    dataDir,
    addClient: (home = 'home-1') => server.addClient(home),
    close: async () => {
      if (closed) return;
      closed = true;
      await server.close();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

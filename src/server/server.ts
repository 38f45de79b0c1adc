/**
 * The FunkyGibbon-compatible sync server: node:http + the pipeline in app.ts + the SQLite store. `close()` stops
 * accepting, lets in-flight requests finish, then closes the database; `destroy()` drops every connection at once.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { App } from './app.js';
import { parseServerConfig, type ServerConfig } from './config.js';
import { InProcessChangeNotifier, LiveWaits, type LiveWaitStats } from './live/index.js';
import { ServerStore, type ClientCredentials, type EntityView } from './store/index.js';

export interface SyncServerOptions {
  readonly config: ServerConfig;
  readonly logger: Logger;
  /** Wall clock in epoch ms; tests inject one to move time (token expiry, signature windows, retention). */
  readonly clock?: () => number;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

export interface SyncServer {
  readonly config: ServerConfig;
  readonly store: ServerStore;
  listen(): Promise<ListenAddress>;
  close(): Promise<void>;
  destroy(): void;
  addClient(homeId: string): ClientCredentials;
  purgeTombstones(): number;
  entities(homeId: string): EntityView[];
  applicationCount(clientId: string, clientSyncId: string): number;
  /** Live waits held now and counted since start (docs/protocol.md §Live waits). */
  liveStats(): LiveWaitStats;
}

const DRAIN_TIMEOUT_MS = 5_000;

class HttpSyncServer implements SyncServer {
  readonly config: ServerConfig;
  readonly store: ServerStore;
  private readonly log: Logger;
  private readonly http: Server;
  private readonly live: LiveWaits;
  private closing = false;
  private closed: Promise<void> | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;

  constructor(options: SyncServerOptions) {
    this.config = parseServerConfig(options.config, 'createSyncServer options.config');
    this.log = options.logger.child({ module: 'server' });
    const clock = options.clock ?? Date.now;
    this.store = new ServerStore({ dataDir: this.config.dataDir, clock });
    const changes = new InProcessChangeNotifier();
    this.live = new LiveWaits({ config: this.config.live, notifier: changes });
    const app = new App({
      store: this.store,
      config: this.config,
      logger: this.log,
      clock,
      isClosing: () => this.closing,
      live: this.live,
      changes,
    });
    // requestTimeout bounds receiving a request (headers and body), not the wait for its answer: a held live wait
    // (fully received) is not cut by it, nor by keepAliveTimeout (idle time between requests only).
    this.http = createServer({ requestTimeout: 30_000, headersTimeout: 15_000 }, app.handle);
    this.http.keepAliveTimeout = 5_000;
  }

  listen(): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.http.once('error', onError);
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off('error', onError);
        this.http.on('error', (err) => this.log.error({ err }, 'http server error'));
        const addr = this.http.address() as AddressInfo;
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        const url = `http://${host}:${addr.port}`;
        this.startPurgeTimer();
        this.log.info({ url }, 'sync server listening');
        resolve({ host: addr.address, port: addr.port, url });
      });
    });
  }

  private startPurgeTimer(): void {
    const everyMs = this.config.tombstones.purgeIntervalSeconds * 1000;
    this.purgeTimer = setInterval(() => {
      try {
        const purged = this.purgeTombstones();
        const tokens = this.store.accounts.deleteExpiredTokens();
        const history = this.store.purgeHistory(this.config.tombstones.retentionSeconds);
        this.log.debug({ purged, tokens, ...history }, 'purge job');
      } catch (err) {
        this.log.error({ err }, 'purge job failed');
      }
    }, everyMs);
    this.purgeTimer.unref();
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.closing = true;
      if (this.purgeTimer) clearInterval(this.purgeTimer);
      this.live.shutdown(); // held waits are answered now (reason "shutdown", Connection: close), not after 25 s
      const force = setTimeout(() => this.http.closeAllConnections(), DRAIN_TIMEOUT_MS);
      force.unref();
      const finish = (): void => {
        clearTimeout(force);
        this.store.close();
        this.log.info('sync server closed');
        resolve();
      };
      if (!this.http.listening) {
        finish();
        return;
      }
      this.http.close(() => finish());
      this.http.closeIdleConnections();
    });
    return this.closed;
  }

  destroy(): void {
    this.closing = true;
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.live.abort();
    this.http.closeAllConnections();
    this.http.close();
    this.store.close();
  }

  addClient(homeId: string): ClientCredentials {
    return this.store.accounts.addClient(homeId);
  }

  purgeTombstones(): number {
    return this.store.purgeTombstones(this.config.tombstones.retentionSeconds);
  }

  entities(homeId: string): EntityView[] {
    return this.store.entities(homeId);
  }

  applicationCount(clientId: string, clientSyncId: string): number {
    return this.store.push.applicationCount(clientId, clientSyncId);
  }

  liveStats(): LiveWaitStats {
    return this.live.stats();
  }
}

export function createSyncServer(options: SyncServerOptions): SyncServer {
  return new HttpSyncServer(options);
}

/**
 * The FunkyGibbon-compatible sync server: node:http (or node:https with `tls`) + the pipeline in app.ts + one store
 * (store/contract.ts) — SQLite in `dataDir` by default, PostgreSQL with `database.url` — and the metrics listener
 * when enabled. `close()` stops accepting, lets in-flight requests finish, then closes the store; `destroy()` drops
 * every connection at once; `reloadTls()` (SIGHUP) swaps the certificate for new handshakes.
 *
 * On PostgreSQL any number of instances serve one database as one server: everything they share is in the database
 * (pg/store.ts), live waits wake across instances by LISTEN/NOTIFY (pg/notifier.ts), and the scheduled maintenance
 * runs once across instances (pg/jobs.ts).
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { App } from './app.js';
import { parseServerConfig, type ServerConfig } from './config.js';
import { InProcessChangeNotifier, LiveWaits, type ChangeNotifier, type LiveWaitStats } from './live/index.js';
import { MetricsListener } from './metrics.js';
import { redactDatabaseUrl } from './pg/connect.js';
import { PgChangeNotifier } from './pg/notifier.js';
import { PgStore } from './pg/store.js';
import type { ClientCredentials } from './store/accounts.js';
import type { StoredEntity, SyncStore } from './store/contract.js';
import { SqliteStore } from './store/sqlite-store.js';
import { readTlsFiles } from './tls.js';
import { ConfigError } from '../errors.js';

export interface SyncServerOptions {
  readonly config: ServerConfig;
  readonly logger: Logger;
  /** Wall clock in epoch ms; tests inject one to move time (token expiry, signature windows, retention). */
  readonly clock?: () => number;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** `http://…` or, with `tls`, `https://…`. */
  readonly url: string;
  /** The metrics listener's URL when `metrics.enabled`. */
  readonly metricsUrl: string | undefined;
}

export interface SyncServer {
  readonly config: ServerConfig;
  /** SQLite (`store.kind === 'sqlite'`) or PostgreSQL. */
  readonly store: SyncStore;
  listen(): Promise<ListenAddress>;
  /** Reads `tls.certFile` / `tls.keyFile` again for new handshakes; false (old certificate kept, error logged) on failure. */
  reloadTls(): boolean;
  close(): Promise<void>;
  destroy(): void;
  addClient(homeId: string): Promise<ClientCredentials>;
  purgeTombstones(): Promise<number>;
  entities(homeId: string): Promise<StoredEntity[]>;
  applicationCount(clientId: string, clientSyncId: string): Promise<number>;
  /** Live waits held now and counted since start (docs/protocol.md §Live waits). */
  liveStats(): LiveWaitStats;
}

const DRAIN_TIMEOUT_MS = 5_000;

/** What a server runs on: its store and the notifier its live waits listen to. */
interface Backing {
  readonly store: SyncStore;
  readonly changes: ChangeNotifier;
  /** Stops the notifier (PostgreSQL's LISTEN connection). */
  readonly closeChanges: () => Promise<void>;
}

/**
 * Every scheduled maintenance runs at most once per this share of the purge interval across all instances (each
 * instance's timer fires every interval; the first to find the last run old enough runs it).
 */
const JOB_INTERVAL_SHARE = 0.9;

class HttpSyncServer implements SyncServer {
  readonly config: ServerConfig;
  readonly store: SyncStore;
  private readonly log: Logger;
  private readonly backing: Backing;
  private readonly app: App;
  private readonly http: HttpServer | HttpsServer;
  private readonly live: LiveWaits;
  private readonly metricsListener: MetricsListener | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;

  constructor(options: SyncServerOptions & { readonly config: ServerConfig; readonly backing: Backing }) {
    this.config = options.config;
    this.log = options.logger.child({ module: 'server' });
    const clock = options.clock ?? Date.now;
    this.backing = options.backing;
    this.store = options.backing.store;
    const changes = options.backing.changes;
    this.live = new LiveWaits({ config: this.config.live, notifier: changes });
    this.app = new App({
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
    const timeouts = { requestTimeout: 30_000, headersTimeout: 15_000 };
    if (this.config.tls === undefined) {
      this.http = createServer(timeouts, this.app.handle);
    } else {
      const material = readTlsFiles(this.config.tls);
      this.http = createHttpsServer(
        { ...timeouts, cert: material.cert, key: material.key, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 },
        this.app.handle,
      );
      this.log.info({ certificate: material.summary }, 'TLS certificate loaded');
    }
    this.http.keepAliveTimeout = 5_000;
    this.metricsListener = this.config.metrics.enabled ? new MetricsListener(this.app.metrics, this.log) : undefined;
  }

  async listen(): Promise<ListenAddress> {
    const metricsUrl = await this.metricsListener?.listen(this.config.metrics.host, this.config.metrics.port);
    if (metricsUrl !== undefined) this.log.info({ metricsUrl }, 'metrics listening');
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        void this.metricsListener?.close();
        reject(err);
      };
      this.http.once('error', onError);
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off('error', onError);
        this.http.on('error', (err) => this.log.error({ err }, 'http server error'));
        const addr = this.http.address() as AddressInfo;
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        const url = `${this.config.tls === undefined ? 'http' : 'https'}://${host}:${addr.port}`;
        this.startPurgeTimer();
        this.log.info({ url }, 'sync server listening');
        resolve({ host: addr.address, port: addr.port, url, metricsUrl });
      });
    });
  }

  reloadTls(): boolean {
    if (this.config.tls === undefined || !('setSecureContext' in this.http)) {
      this.log.warn('TLS reload asked, but the server has no tls section: nothing to reload');
      return false;
    }
    try {
      const material = readTlsFiles(this.config.tls);
      this.http.setSecureContext({ cert: material.cert, key: material.key, minVersion: 'TLSv1.2' });
      this.log.info({ certificate: material.summary }, 'TLS certificate reloaded: new connections use it');
      return true;
    } catch (err) {
      this.log.error({ err }, 'TLS reload failed: keeping the certificate in use');
      return false;
    }
  }

  private startPurgeTimer(): void {
    const everyMs = this.config.tombstones.purgeIntervalSeconds * 1000;
    const options = {
      retentionSeconds: this.config.tombstones.retentionSeconds,
      nonceWindowSeconds: this.config.hmac.windowSeconds,
      minIntervalSeconds: this.config.tombstones.purgeIntervalSeconds * JOB_INTERVAL_SHARE,
      historyRetentionSeconds: this.config.history.retentionSeconds,
      historyMaxPerEntity: this.config.history.maxPerEntity,
    };
    this.purgeTimer = setInterval(() => {
      this.store.maintain(options).then(
        (report) => this.log.debug({ ...report, ran: report !== undefined }, 'purge job'),
        (err: unknown) => this.log.error({ err }, 'purge job failed'),
      );
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
        this.app.flushLogs();
        // The SQLite store writes its exact watermarks as it closes (only the serving process may).
        Promise.all([this.store.close(), this.backing.closeChanges()])
          .catch((err: unknown) => this.log.error({ err }, 'closing the store failed'))
          .finally(() => {
            this.log.info('sync server closed');
            resolve();
          });
      };
      void this.metricsListener?.close();
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
    void this.metricsListener?.close();
    this.http.closeAllConnections();
    this.http.close();
    // Like a crash for the store: SQLite's watermarks are not flushed (the next start adds its slack).
    if (this.store instanceof SqliteStore) this.store.local.close();
    else void this.store.close().catch(() => undefined);
    void this.backing.closeChanges().catch(() => undefined);
  }

  addClient(homeId: string): Promise<ClientCredentials> {
    return this.store.addClient(homeId);
  }

  purgeTombstones(): Promise<number> {
    return this.store.purgeTombstones(this.config.tombstones.retentionSeconds);
  }

  entities(homeId: string): Promise<StoredEntity[]> {
    return this.store.entities(homeId);
  }

  applicationCount(clientId: string, clientSyncId: string): Promise<number> {
    return this.store.applicationCount(clientId, clientSyncId);
  }

  liveStats(): LiveWaitStats {
    return this.live.stats();
  }
}

function sqliteBacking(config: ServerConfig, clock: () => number): Backing {
  const store = new SqliteStore({ dataDir: config.dataDir, clock, nonceWindowSeconds: config.hmac.windowSeconds });
  return { store, changes: new InProcessChangeNotifier(), closeChanges: async () => undefined };
}

async function pgBacking(config: ServerConfig, url: string, logger: Logger, clock: () => number): Promise<Backing> {
  // Migrates at open (idempotent, under an advisory lock) and refuses a schema newer than this build knows.
  const store = await PgStore.open({ url, clock, poolSize: config.database.poolSize });
  const changes = new PgChangeNotifier({ url, instanceId: store.instanceId, logger });
  try {
    await changes.start();
  } catch (err) {
    await store.close();
    throw err;
  }
  logger.info({ database: redactDatabaseUrl(url), instance: store.instanceId }, 'store: PostgreSQL');
  return { store, changes, closeChanges: () => changes.close() };
}

/**
 * The server on the store its config names: PostgreSQL when `database.url` is set (connected, migrated and listening
 * for other instances' commits before this resolves), else SQLite in `dataDir`.
 */
export async function openSyncServer(options: SyncServerOptions): Promise<SyncServer> {
  const config = parseServerConfig(options.config, 'openSyncServer options.config');
  const clock = options.clock ?? Date.now;
  const url = config.database.url;
  const backing = url === undefined ? sqliteBacking(config, clock) : await pgBacking(config, url, options.logger, clock);
  return new HttpSyncServer({ ...options, config, backing });
}

/** The server on SQLite, synchronously (embedding, tests); a config with `database.url` needs openSyncServer. */
export function createSyncServer(options: SyncServerOptions): SyncServer {
  const config = parseServerConfig(options.config, 'createSyncServer options.config');
  if (config.database.url !== undefined) {
    throw new ConfigError(['database.url: a PostgreSQL server is opened with openSyncServer (it connects first)'], 'createSyncServer');
  }
  return new HttpSyncServer({ ...options, config, backing: sqliteBacking(config, options.clock ?? Date.now) });
}

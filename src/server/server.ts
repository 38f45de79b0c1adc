/**
 * The FunkyGibbon-compatible sync server: node:http (or node:https with `tls`) + the pipeline in app.ts + the SQLite
 * store, and the metrics listener when enabled. `close()` stops accepting, lets in-flight requests finish, then
 * closes the database; `destroy()` drops every connection at once; `reloadTls()` (SIGHUP) swaps the certificate for
 * new handshakes.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { App } from './app.js';
import { parseServerConfig, type ServerConfig } from './config.js';
import { InProcessChangeNotifier, LiveWaits, type LiveWaitStats } from './live/index.js';
import { MetricsListener } from './metrics.js';
import { ServerStore, type ClientCredentials, type EntityView } from './store/index.js';
import { readTlsFiles } from './tls.js';

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
  readonly store: ServerStore;
  listen(): Promise<ListenAddress>;
  /** Reads `tls.certFile` / `tls.keyFile` again for new handshakes; false (old certificate kept, error logged) on failure. */
  reloadTls(): boolean;
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
  private readonly app: App;
  private readonly http: HttpServer | HttpsServer;
  private readonly live: LiveWaits;
  private readonly metricsListener: MetricsListener | undefined;
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
        this.app.flushLogs();
        this.store.flushWatermarks();
        this.store.close();
        this.log.info('sync server closed');
        resolve();
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

/**
 * The gateway daemon: wires store → sync client/clock → ingest → broker → scheduler with plain constructors, and
 * stops them in reverse order (design.md §What runs). One process, one event loop, no singletons.
 */
import type { Logger } from '../log.js';
import type { GatewayConfig } from '../config/gateway-config.js';
import { createBroker, type Broker, type BrokerAddress } from '../broker/index.js';
import { createIngest, createNativeAdapter, type Ingest, type IngestAdapter } from '../ingest/index.js';
import { openStore, type Db } from '../store/db.js';
import { storePath } from '../store/device-queries.js';
import { readSyncStatus, SyncStateRepo, type SyncStatus } from '../store/sync-state.js';
import type { DeviceCommand, StampClock } from '../store/types.js';
import { ServerClock, SyncClient, SyncScheduler, type CycleReport, type SchedulerStatus } from '../sync/index.js';

export interface GatewayDaemonOptions {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Local wall clock, epoch ms (tests inject a skewed one). */
  readonly now?: () => number;
}

export interface DaemonStatus extends SyncStatus {
  readonly scheduler: SchedulerStatus | null;
  readonly syncConfigured: boolean;
  readonly brokerClients: number;
  readonly mqtt: BrokerAddress | null;
}

interface Running {
  readonly db: Db;
  readonly broker: Broker;
  readonly ingest: Ingest;
  readonly sync: SyncClient | undefined;
  readonly scheduler: SyncScheduler | undefined;
  readonly address: BrokerAddress;
}

export class GatewayDaemon {
  readonly config: GatewayConfig;
  readonly #log: Logger;
  /** The logger components derive their own `module` child from. */
  readonly #root: Logger;
  readonly #now: () => number;
  #running: Running | undefined;
  #starting: Promise<BrokerAddress> | undefined;
  /** Where the sync client's device commands go; set once ingest exists (both are created in the same start). */
  #commandsSink: (commands: DeviceCommand[]) => void = () => undefined;

  constructor(options: GatewayDaemonOptions) {
    if (options.config === null || typeof options.config !== 'object') {
      throw new TypeError(`gateway daemon: expected a config object, got ${typeof options.config}`);
    }
    this.config = options.config;
    this.#root = options.logger;
    this.#log = options.logger.child({ module: 'daemon' });
    this.#now = options.now ?? Date.now;
  }

  /** True when server credentials are configured and sync is enabled. */
  get syncConfigured(): boolean {
    const { server, sync } = this.config;
    return sync.enabled && server.clientId !== undefined && server.clientSecret !== undefined;
  }

  start(): Promise<BrokerAddress> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<BrokerAddress> {
    const { config } = this;
    const logger = this.#root;
    const db = openStore({ path: storePath(config.dataDir) });
    const sync = this.#createSyncClient(db);
    const clock: StampClock = sync?.clock ?? new ServerClock({ now: this.#now, state: new SyncStateRepo(db), logger });
    const broker = createBroker({ host: config.mqtt.host, port: config.mqtt.port, logger });
    const scheduler = sync ? this.#createScheduler(sync, db) : undefined;
    const ingest = createIngest({
      broker,
      db,
      logger,
      clock,
      now: this.#now,
      adapters: this.#adapters(),
      groupCommitWindowMs: config.ingest.groupCommitWindowMs,
      maxBatch: config.ingest.maxBatch,
      critical: { deviceTypes: config.ingest.critical.deviceTypes, attributes: config.ingest.critical.attributes },
      onLocalChange: (event) => scheduler?.notifyLocalChange(event.critical),
    });
    this.#commandsSink = (commands) => {
      void ingest.publishCommands(commands).catch((err: unknown) => logger.error({ err }, 'downlink publish failed'));
    };
    ingest.start();
    let address: BrokerAddress;
    try {
      address = await broker.start();
    } catch (err) {
      ingest.stop();
      db.close();
      throw err;
    }
    this.#running = { db, broker, ingest, sync, scheduler, address };
    this.#log.info({ mqtt: `${address.host}:${address.port}`, store: storePath(config.dataDir), server: config.server.url }, 'gateway started');
    if (scheduler) scheduler.start();
    else {
      new SyncStateRepo(db).set('mode', 'offline');
      this.#log.warn(
        { hint: 'set server.clientId and server.clientSecret (or INBETWEENIES_CLIENT_ID / INBETWEENIES_CLIENT_SECRET)' },
        this.config.sync.enabled ? 'no server credentials configured: offline, buffering every change' : 'sync disabled: buffering every change',
      );
    }
    return address;
  }

  #createSyncClient(db: Db): SyncClient | undefined {
    const { server, sync } = this.config;
    if (!this.syncConfigured || server.clientId === undefined || server.clientSecret === undefined) return undefined;
    return new SyncClient({
      db,
      logger: this.#root,
      now: this.#now,
      serverUrl: server.url,
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      hmac: server.hmac,
      gzipThresholdBytes: server.gzipThresholdBytes,
      connectTimeoutMs: server.connectTimeoutMs,
      headersTimeoutMs: server.requestTimeoutMs,
      bodyTimeoutMs: server.requestTimeoutMs,
      pushBatchSize: sync.pushBatchSize,
      onDeviceCommands: (commands) => this.#commandsSink(commands),
    });
  }

  #createScheduler(sync: SyncClient, db: Db): SyncScheduler {
    const s = this.config.sync;
    return new SyncScheduler({
      runner: sync,
      logger: this.#root,
      state: new SyncStateRepo(db),
      now: this.#now,
      minIntervalMs: Math.round(s.minIntervalSeconds * 1000),
      maxIntervalMs: Math.round(s.maxIntervalSeconds * 1000),
      criticalDebounceMs: s.criticalDebounceMs,
      maxRetries: s.maxRetries,
      probeIntervalMs: Math.round(s.offlineProbeSeconds * 1000),
    });
  }

  #adapters(): IngestAdapter[] {
    const { ingest, mqtt } = this.config;
    const adapters: IngestAdapter[] = [];
    if (ingest.native.enabled) adapters.push(createNativeAdapter({ baseTopic: ingest.native.baseTopic, maxPayloadBytes: mqtt.maxPayloadBytes }));
    return adapters;
  }

  /** Runs a sync cycle now; rejects when sync is not configured. */
  async syncNow(): Promise<CycleReport> {
    const scheduler = this.#running?.scheduler;
    if (!scheduler) throw new Error('sync is not configured (no server credentials) or the daemon is not running');
    return scheduler.syncNow();
  }

  status(): DaemonStatus {
    const running = this.#running;
    if (!running) throw new Error('gateway daemon is not running');
    return {
      ...readSyncStatus(running.db, this.#now()),
      scheduler: running.scheduler?.status() ?? null,
      syncConfigured: running.sync !== undefined,
      brokerClients: running.broker.clientCount(),
      mqtt: running.address,
    };
  }

  /** The open store, for tests and the HTTP status endpoints. */
  get db(): Db | undefined {
    return this.#running?.db;
  }

  get ingest(): Ingest | undefined {
    return this.#running?.ingest;
  }

  /** Stops in reverse order: scheduler (bounded wait for a cycle in flight), ingest (final group commit), broker, store. */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const running = this.#running;
    if (!running) return;
    this.#running = undefined;
    this.#starting = undefined;
    await running.scheduler?.stop();
    await running.sync?.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the sync transport failed'));
    running.ingest.stop();
    await running.broker.stop();
    running.db.close();
    this.#log.info('gateway stopped');
  }
}

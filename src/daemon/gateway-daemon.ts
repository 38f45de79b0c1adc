/**
 * The gateway daemon: wires store → sync client/clock → ingest → broker → scheduler with plain constructors, and
 * stops them in reverse order (design.md §What runs). One process, one event loop, no singletons.
 */
import type { Logger } from '../log.js';
import type { GatewayConfig } from '../config/gateway-config.js';
import type { BrokerAddress } from '../broker/index.js';
import { createMqttBus, type MqttBus } from '../broker/bus.js';
import { createIngest, type Ingest, type IngestAdapter } from '../ingest/index.js';
import { createAdapters } from '../ingest/adapters/index.js';
import { openStore, type Db } from '../store/db.js';
import { storePath } from '../store/device-queries.js';
import { readSyncStatus, SyncStateRepo, type SyncStatus } from '../store/sync-state.js';
import type { DeviceCommand, StampClock } from '../store/types.js';
import { ServerClock, SyncClient, SyncScheduler, type CycleReport, type SchedulerStatus } from '../sync/index.js';
import { DaemonOps } from './ops.js';
import { InstrumentedRunner } from './sync-stats.js';

export interface GatewayDaemonOptions {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Local wall clock, epoch ms (tests inject a skewed one). */
  readonly now?: () => number;
  /** Where systemd's NOTIFY_SOCKET / WATCHDOG_USEC are read (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface DaemonStatus extends SyncStatus {
  readonly scheduler: SchedulerStatus | null;
  readonly syncConfigured: boolean;
  readonly brokerClients: number;
  readonly mqtt: BrokerAddress | null;
}

interface Running {
  readonly db: Db;
  /** Embedded broker or external broker connection (config.mqtt.mode). */
  readonly broker: MqttBus;
  readonly ingest: Ingest;
  readonly sync: SyncClient | undefined;
  readonly scheduler: SyncScheduler | undefined;
  readonly runner: InstrumentedRunner | undefined;
  readonly address: BrokerAddress;
  ops: DaemonOps | undefined;
}

export class GatewayDaemon {
  readonly config: GatewayConfig;
  readonly #log: Logger;
  /** The logger components derive their own `module` child from. */
  readonly #root: Logger;
  readonly #now: () => number;
  readonly #env: NodeJS.ProcessEnv;
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
    this.#env = options.env ?? process.env;
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
    const adapters = this.#adapters();
    const broker = await createMqttBus({
      mqtt: config.mqtt,
      logger,
      filters: adapters.flatMap((a) => a.filters),
      dynamicFilters: () => adapters.flatMap((a) => a.dynamicFilters?.() ?? []),
      watchFilters: (listener) => {
        const removals = adapters.map((a) => a.onFiltersChanged?.(() => listener()));
        return () => removals.forEach((remove) => remove?.());
      },
    });
    const runner = sync ? new InstrumentedRunner({ inner: sync, state: new SyncStateRepo(db) }) : undefined;
    const scheduler = runner ? this.#createScheduler(runner, db) : undefined;
    const ingest = createIngest({
      broker,
      db,
      logger,
      clock,
      now: this.#now,
      adapters,
      groupCommitWindowMs: config.ingest.groupCommitWindowMs,
      qos0WindowMs: Math.max(config.ingest.qos0WindowMs, config.ingest.groupCommitWindowMs),
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
    const running: Running = { db, broker, ingest, sync, scheduler, runner, address, ops: undefined };
    this.#running = running;
    this.#log.info({ mqtt: `${address.host}:${address.port}`, store: storePath(config.dataDir), server: config.server.url }, 'gateway started');
    if (scheduler) scheduler.start();
    else {
      new SyncStateRepo(db).set('mode', 'offline');
      this.#log.warn(
        { hint: 'set server.clientId and server.clientSecret (or INBETWEENIES_CLIENT_ID / INBETWEENIES_CLIENT_SECRET)' },
        this.config.sync.enabled ? 'no server credentials configured: offline, buffering every change' : 'sync disabled: buffering every change',
      );
    }
    await this.#startOps(running);
    return address;
  }

  /** Health, systemd notify (READY=1 now: the broker listens and the store is open), jobs, HTTP listener. */
  async #startOps(running: Running): Promise<void> {
    const ops = new DaemonOps({
      config: this.config,
      logger: this.#root,
      env: this.#env,
      now: this.#now,
      db: running.db,
      broker: running.broker,
      ingest: running.ingest,
      scheduler: running.scheduler,
      runner: running.runner,
      transport: () => running.sync?.transport.stats,
      status: () => this.#statusOf(running),
    });
    running.ops = ops;
    try {
      await ops.start();
    } catch (err) {
      this.#starting = Promise.resolve(running.address);
      await this.stop();
      throw err;
    }
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
      ...(server.caFile === undefined ? {} : { caFile: server.caFile }),
      ...(server.pinSha256 === undefined ? {} : { pinSha256: server.pinSha256 }),
      clockMaxDisagreementMs: server.clockMaxDisagreementMs,
      pushBatchSize: sync.pushBatchSize,
      onDeviceCommands: (commands) => this.#commandsSink(commands),
    });
  }

  #createScheduler(runner: InstrumentedRunner, db: Db): SyncScheduler {
    const s = this.config.sync;
    return new SyncScheduler({
      runner,
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

  /** The enabled ingest adapters (issue 4: zigbee2mqtt, Tasmota, Shelly, Home Assistant, generic, native). */
  #adapters(): IngestAdapter[] {
    const { ingest, mqtt } = this.config;
    return createAdapters({ adapters: ingest.adapters, native: ingest.native, maxPayloadBytes: mqtt.maxPayloadBytes });
  }

  /** Runs a sync cycle now (`full`: a reconcile from last_sync null); rejects when sync is not configured. */
  async syncNow(options: { full?: boolean } = {}): Promise<CycleReport> {
    const { scheduler, runner } = this.#running ?? {};
    if (!scheduler || !runner) throw new Error('sync is not configured (no server credentials) or the daemon is not running');
    if (options.full) runner.requestFullReconcile();
    return scheduler.syncNow();
  }

  /** Health, notify, jobs and the HTTP listener of the running daemon. */
  get ops(): DaemonOps | undefined {
    return this.#running?.ops;
  }

  status(): DaemonStatus {
    const running = this.#running;
    if (!running) throw new Error('gateway daemon is not running');
    return this.#statusOf(running);
  }

  #statusOf(running: Running): DaemonStatus {
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
    await running.ops?.beginStop();
    await running.scheduler?.stop();
    await running.sync?.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the sync transport failed'));
    running.ingest.stop();
    await running.broker.stop();
    running.db.close();
    await running.ops?.finish();
    this.#log.info('gateway stopped');
  }
}

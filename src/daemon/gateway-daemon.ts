/**
 * The gateway daemon: wires the components with plain constructors and starts them as an ordered list, stopped in
 * reverse (lifecycle.ts): store → sync client → ingest → MQTT bus → bridge → scheduler → jobs → control listener →
 * supervisor. The server-corrected clock is built right after the store (on its sync state) and handed to ingest
 * (stamps) and the sync client (which learns the offset): one clock, sync on or off. What changes (ingest commits,
 * server changes sent to devices, sync cycles) is said on the daemon's event hub (events.ts), which the bridge and
 * the status page listen to. One process, no singletons. The sync client and scheduler are built in sync-wiring.ts.
 */
import type { BrokerAddress } from '../broker/index.js';
import { createMqttBus, type MqttBus } from '../broker/bus.js';
import type { GatewayConfig } from '../config/gateway-config.js';
import { createAdapters } from '../ingest/adapters/index.js';
import { createIngest, type Ingest } from '../ingest/index.js';
import type { Logger } from '../log.js';
import { openStore, storePath, type GatewayStore } from '../store/index.js';
import type { DeviceCommand } from '../store/types.js';
import { ServerClock, type CycleReport, type SyncClient, type SyncScheduler } from '../sync/index.js';
import { readPackageInfo } from '../version.js';
import { countByAdapter } from './adapter-counts.js';
import { Bridge, bridgeBirth, bridgeWill } from './bridge.js';
import { bridgeInfo, bridgeTopics } from './bridge-discovery.js';
import { jobSpecs, syncNow, type ControlContext, type OpsStatus } from './control.js';
import { EventHub } from './events.js';
import { HealthMonitor, type HealthReport } from './health.js';
import { JobRunner } from './jobs.js';
import { ComponentStack, type Component } from './lifecycle.js';
import { SystemdNotifier } from './notify.js';
import type { DaemonStatus } from './status.js';
import { Supervisor } from './supervisor.js';
import { InstrumentedRunner } from './sync-stats.js';
import { createScheduler, createSyncClient, schedulerComponent, syncConfigured } from './sync-wiring.js';

export type { DaemonStatus } from './status.js';

export interface GatewayDaemonOptions {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Local wall clock, epoch ms (tests inject a skewed one). */
  readonly now?: () => number;
  /** Where systemd's NOTIFY_SOCKET / WATCHDOG_USEC and INBETWEENIES_FAULT are read (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** The version reported (status, /healthz, metrics, the bridge); default the package's. */
  readonly version?: string;
}

interface Running {
  readonly stack: ComponentStack;
  readonly store: GatewayStore;
  /** Embedded broker or external broker connection (config.mqtt.mode). */
  readonly bus: MqttBus;
  readonly ingest: Ingest;
  readonly sync: SyncClient | undefined;
  readonly scheduler: SyncScheduler | undefined;
  readonly runner: InstrumentedRunner | undefined;
  readonly address: BrokerAddress;
  readonly startedAt: number;
  readonly hub: EventHub;
  health: HealthMonitor | undefined;
  jobs: JobRunner | undefined;
  httpUrl: string | null;
}

export class GatewayDaemon {
  readonly config: GatewayConfig;
  readonly #log: Logger;
  /** The logger components derive their own `module` child from. */
  readonly #root: Logger;
  readonly #now: () => number;
  readonly #env: NodeJS.ProcessEnv;
  readonly #version: string;
  #running: Running | undefined;
  #starting: Promise<BrokerAddress> | undefined;

  constructor(options: GatewayDaemonOptions) {
    if (options.config === null || typeof options.config !== 'object') {
      throw new TypeError(`gateway daemon: expected a config object, got ${typeof options.config}`);
    }
    this.config = options.config;
    this.#root = options.logger;
    this.#log = options.logger.child({ module: 'daemon' });
    this.#now = options.now ?? Date.now;
    this.#env = options.env ?? process.env;
    this.#version = options.version ?? readPackageInfo().version;
  }

  /** True when server credentials are configured and sync is enabled (sync-wiring.ts). */
  get syncConfigured(): boolean {
    return syncConfigured(this.config);
  }

  start(): Promise<BrokerAddress> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<BrokerAddress> {
    const stack = new ComponentStack(this.#log);
    try {
      return await this.#startIn(stack);
    } catch (err) {
      this.#running = undefined;
      await stack.stopAll();
      throw err;
    }
  }

  async #startIn(stack: ComponentStack): Promise<BrokerAddress> {
    const { config } = this;
    const logger = this.#root;
    const store = openStore({ path: storePath(config.dataDir), logger, now: this.#now, writer: config.store.writer });
    await stack.start({ name: 'store', start: () => undefined, stop: () => store.close() });
    const hub = new EventHub(logger);
    const clock = new ServerClock({
      now: this.#now,
      monotonic: () => performance.now(),
      state: store.syncState,
      logger,
      maxDateDisagreementMs: this.config.server.clockMaxDisagreementMs,
    });
    let deliver: (commands: DeviceCommand[]) => void = () => undefined;
    const sync = createSyncClient({ config, store, clock, logger, env: this.#env, now: this.#now, onDeviceCommands: (commands) => deliver(commands) });
    if (sync) await stack.start({ name: 'sync client', start: () => undefined, stop: () => sync.close() });
    const runner = sync ? new InstrumentedRunner({ inner: sync }) : undefined;
    // A live round reports what it pulled too; only the count matters to the listeners (devices may have changed).
    runner?.onCycle((o) => hub.emit({ kind: 'sync', ok: o.ok, pulled: o.report?.pulled ?? 0 }));
    const scheduler = runner ? createScheduler({ config, runner, store, logger, now: this.#now }) : undefined;
    const ingest = await this.#startIngestAndBus(stack, store, clock, scheduler, hub);
    deliver = (commands) => {
      hub.emit({ kind: 'devices', ids: commands.map((c) => c.deviceId) });
      void ingest.ingest.publishCommands(commands).catch((err: unknown) => logger.error({ err }, 'downlink publish failed'));
    };
    const running: Running = { stack, store, ...ingest, sync, scheduler, runner, startedAt: this.#now(), hub, health: undefined, jobs: undefined, httpUrl: null };
    this.#running = running;
    this.#log.info({ mqtt: `${running.address.host}:${running.address.port}`, store: store.path, server: config.server.url }, 'gateway started');
    if (config.bridge.enabled) await stack.start(this.#bridge(running));
    await stack.start(schedulerComponent(scheduler, store, config.sync.enabled, this.#log));
    await this.#startOps(running);
    return running.address;
  }

  /** Ingest attaches to the bus before the bus listens (nothing slips through un-ingested), and stops after it. */
  async #startIngestAndBus(
    stack: ComponentStack,
    store: GatewayStore,
    clock: ServerClock,
    scheduler: SyncScheduler | undefined,
    hub: EventHub,
  ): Promise<{ ingest: Ingest; bus: MqttBus; address: BrokerAddress }> {
    const { config } = this;
    const bridge = config.bridge;
    const adapters = createAdapters({
      adapters: config.ingest.adapters,
      native: config.ingest.native,
      maxPayloadBytes: config.mqtt.maxPayloadBytes,
      ignoreHomeAssistantNodeIds: [bridgeTopics(bridge.baseTopic).nodeId],
    });
    // The bridge reads its own state topic (an `offline` written over it is answered) and Home Assistant's birth.
    const bridgeFilters = bridge.enabled ? [bridgeTopics(bridge.baseTopic).state, `${bridge.homeassistant.discoveryPrefix}/status`] : [];
    const bus = await createMqttBus({
      mqtt: config.mqtt,
      logger: this.#root,
      ...(bridge.enabled ? { will: bridgeWill(bridge.baseTopic), birth: bridgeBirth(bridge.baseTopic) } : {}),
      filters: [...new Set([...adapters.flatMap((a) => a.filters), ...bridgeFilters])],
      dynamicFilters: () => adapters.flatMap((a) => a.dynamicFilters?.() ?? []),
      watchFilters: (listener) => {
        const removals = adapters.map((a) => a.onFiltersChanged?.(() => listener()));
        return () => removals.forEach((remove) => remove?.());
      },
    });
    const ingest = createIngest({
      broker: bus,
      store,
      logger: this.#root,
      clock,
      now: this.#now,
      adapters,
      groupCommitWindowMs: config.ingest.groupCommitWindowMs,
      qos0WindowMs: Math.max(config.ingest.qos0WindowMs, config.ingest.groupCommitWindowMs),
      maxBatch: config.ingest.maxBatch,
      critical: { deviceTypes: config.ingest.critical.deviceTypes, attributes: config.ingest.critical.attributes },
      deviceLimits: config.ingest.deviceLimits,
      onLocalChange: (event) => {
        scheduler?.notifyLocalChange(event.critical);
        hub.emit({ kind: 'devices', ids: event.deviceIds });
      },
    });
    await stack.start({ name: 'ingest', start: () => ingest.start(), stop: () => ingest.stop() });
    let address: BrokerAddress | undefined;
    await stack.start({ name: 'mqtt', start: async () => void (address = await bus.start()), stop: () => bus.stop() });
    if (address === undefined) throw new Error('mqtt bus started without an address');
    return { ingest, bus, address };
  }

  /** Jobs, the control listener (when configured) and last the supervisor: READY=1 now means the pipeline runs. */
  async #startOps(running: Running): Promise<void> {
    const { config } = this;
    const h = config.health;
    const health = new HealthMonitor({
      store: running.store,
      brokerListening: () => running.bus.address() !== undefined,
      ingestCounters: () => running.ingest.metrics(),
      syncStatus: () => running.scheduler?.status() ?? null,
      maxEventLoopLagMs: h.maxEventLoopLagMs,
      storeProbeIntervalMs: h.storeProbeSeconds * 1000,
      syncFailingAfterMs: h.syncFailingAfterSeconds * 1000,
      now: this.#now,
    });
    running.health = health;
    const ctx: ControlContext = { version: this.#version, store: running.store, scheduler: running.scheduler, runner: running.runner, health, jobs: () => running.jobs, status: () => this.#opsStatus(running) };
    const jobs = new JobRunner({ logger: this.#root, jobs: jobSpecs(config, ctx, this.#now), ...(config.jobs.timezone ? { timezone: config.jobs.timezone } : {}), now: this.#now });
    running.jobs = jobs;
    await running.stack.start({ name: 'jobs', start: () => jobs.start(), stop: () => jobs.stop() });
    if (config.http.port !== null) await running.stack.start(await this.#controlListener(running, ctx));
    const notifier = new SystemdNotifier({ logger: this.#root, env: this.#env });
    const supervisor = new Supervisor({
      health,
      notifier,
      logger: this.#root,
      intervalMs: h.intervalMs,
      statusLine: (report) => this.#statusLine(running, report),
      httpUrl: () => running.httpUrl,
    });
    await running.stack.start(supervisor);
  }

  /** Loaded only when the listener is on: the daemon's resident memory does not carry prom-client otherwise. */
  async #controlListener(running: Running, ctx: ControlContext): Promise<Component> {
    const { controlListener } = await import('./listener.js');
    return controlListener({
      http: this.config.http,
      logger: this.#root,
      version: this.#version,
      ctx,
      hub: running.hub,
      store: running.store,
      metrics: {
        ingest: () => running.ingest.metrics(),
        store: () => running.store.status(this.#now()),
        storeStats: () => running.store.stats(),
        scheduler: () => running.scheduler?.status() ?? null,
        runner: running.runner,
        transport: () => running.sync?.transport.stats,
        convergence: () => running.sync?.convergence.status ?? null,
        health: () => ctx.health.check(),
        extra: {
          version: this.#version,
          messagesByAdapter: () => running.ingest.metrics().messagesByAdapter,
          devicesByAdapter: () => countByAdapter(running.store.entities.deviceIds(), running.ingest.router),
        },
      },
      onListening: (url) => {
        running.httpUrl = url;
      },
    });
  }

  #bridge(running: Running): Bridge {
    const b = this.config.bridge;
    return new Bridge({
      bus: running.bus,
      connected: () => running.bus.address() !== undefined,
      settings: { baseTopic: b.baseTopic, homeassistant: b.homeassistant, updateMs: Math.round(b.homeassistant.updateSeconds * 1000) },
      version: this.#version,
      info: () => bridgeInfo({ ...this.#statusOf(running), devices: running.store.entities.deviceCount() }, this.#version),
      hub: running.hub,
      logger: this.#root,
    });
  }

  /** Runs a sync cycle now (`full`: a reconcile from last_sync null); rejects when sync is not configured. */
  async syncNow(options: { full?: boolean } = {}): Promise<CycleReport> {
    const running = this.#running;
    if (!running?.scheduler) throw new Error('sync is not configured (no server credentials) or the daemon is not running');
    return syncNow(running, options.full ?? false);
  }

  /** URL of the control listener (http.port), once it listens. */
  get httpUrl(): string | null {
    return this.#running?.httpUrl ?? null;
  }

  status(): DaemonStatus {
    const running = this.#running;
    if (!running) throw new Error('gateway daemon is not running');
    return this.#statusOf(running);
  }

  #statusOf(running: Running): DaemonStatus {
    return {
      ...running.store.status(this.#now()),
      scheduler: running.scheduler?.status() ?? null,
      syncConfigured: running.sync !== undefined,
      convergence: running.sync?.convergence.status ?? null,
      brokerClients: running.bus.clientCount(),
      mqtt: running.address,
      server: running.store.syncState.get('server_profile') ?? null,
    };
  }

  #opsStatus(running: Running): OpsStatus {
    return {
      ...this.#statusOf(running),
      source: 'daemon',
      version: this.#version,
      pid: process.pid,
      uptimeSeconds: Math.round((this.#now() - running.startedAt) / 1000),
      devices: running.store.entities.deviceCount(),
      health: running.health?.check() ?? emptyReport(this.#now()),
      jobs: running.jobs?.status() ?? [],
      http: running.httpUrl,
    };
  }

  /** STATUS= line: devices, pending, last sync, mode (docs/operations.md §systemd). */
  #statusLine(running: Running, report: HealthReport): string {
    const st = this.#statusOf(running);
    const oldest = st.oldestPendingAgeMs === null ? '' : ` (oldest ${Math.round(st.oldestPendingAgeMs / 1000)}s)`;
    const last = st.lastSyncAt === null ? 'never' : `${new Date(st.lastSyncAt).toISOString().slice(0, 19)}Z ${st.lastResult?.ok === false ? 'failed' : 'ok'}`;
    const s = st.scheduler;
    const mode = s === null ? (st.syncConfigured ? 'stopped' : 'offline (no credentials)') : s.mode === 'online' ? `online, ${s.via}` : s.mode;
    const bad = report.healthy ? '' : `; UNHEALTHY: ${report.reasons.join('; ')}`;
    return `${running.store.entities.deviceCount()} devices, ${st.pending} pending${oldest}, last sync ${last}, ${mode}, ${st.brokerClients} mqtt clients${bad}`;
  }

  /** The open store, for tests and the HTTP status endpoints. */
  get store(): GatewayStore | undefined {
    return this.#running?.store;
  }

  get ingest(): Ingest | undefined {
    return this.#running?.ingest;
  }

  /** Stops every component in reverse start order (supervisor first: STOPPING=1; store last, after ingest drained). */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const running = this.#running;
    if (!running) return;
    this.#running = undefined;
    this.#starting = undefined;
    await running.stack.stopAll();
    this.#log.info('gateway stopped');
  }
}

function emptyReport(at: number): HealthReport {
  const ok = { ok: true };
  return { healthy: true, watchdogOk: true, reasons: [], eventLoopLagMs: 0, checks: { eventLoop: ok, broker: ok, store: ok, ingest: ok, sync: ok }, at };
}

/**
 * Operations around the running pipeline (issue 5): health checks, systemd notify + watchdog, scheduled jobs and the
 * loopback HTTP listener (health, metrics, control). The daemon starts it once the broker listens and the store is
 * open (so READY=1 means exactly that), and stops it first on SIGTERM (STOPPING=1).
 */
import { GatewayError } from '../errors.js';
import type { GatewayConfig } from '../config/gateway-config.js';
import type { Logger } from '../log.js';
import type { Broker } from '../broker/index.js';
import type { Ingest } from '../ingest/index.js';
import type { GatewayStore } from '../store/index.js';
import type { CycleReport, SyncScheduler } from '../sync/index.js';
import type { DaemonStatus } from './status.js';
import { HealthMonitor, type HealthReport } from './health.js';
import type { ControlHandlers, ControlServer } from './http.js';
import { JobRunner, maintainStore, pruneConflicts, type JobSpec, type JobStatus } from './jobs.js';
import type { GatewayMetrics } from './metrics.js';
import { SystemdNotifier } from './notify.js';
import type { InstrumentedRunner } from './sync-stats.js';

export interface OpsContext {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  readonly env: NodeJS.ProcessEnv;
  readonly now: () => number;
  readonly store: GatewayStore;
  readonly broker: Pick<Broker, 'address'>;
  readonly ingest: Ingest;
  readonly scheduler: SyncScheduler | undefined;
  readonly runner: InstrumentedRunner | undefined;
  readonly transport: () => { bytesSent: number; bytesReceived: number } | undefined;
  readonly status: () => DaemonStatus;
}

/** What GET /status and `status` (daemon path) show. */
export interface OpsStatus extends DaemonStatus {
  readonly source: 'daemon';
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly devices: number;
  readonly health: HealthReport;
  readonly jobs: JobStatus[];
  readonly http: string | null;
}

export class DaemonOps {
  readonly health: HealthMonitor;
  readonly notifier: SystemdNotifier;
  readonly jobs: JobRunner;
  readonly #ctx: OpsContext;
  readonly #log: Logger;
  readonly #startedAt: number;
  readonly #countDevices: () => number;
  #timer: NodeJS.Timeout | undefined;
  #http: ControlServer | undefined;
  #httpUrl: string | null = null;

  constructor(ctx: OpsContext) {
    this.#ctx = ctx;
    this.#log = ctx.logger.child({ module: 'ops' });
    this.#startedAt = ctx.now();
    const h = ctx.config.health;
    this.health = new HealthMonitor({
      store: ctx.store,
      brokerListening: () => ctx.broker.address() !== undefined,
      ingestCounters: () => ctx.ingest.metrics(),
      syncStatus: () => ctx.scheduler?.status() ?? null,
      maxEventLoopLagMs: h.maxEventLoopLagMs,
      storeProbeIntervalMs: h.storeProbeSeconds * 1000,
      syncFailingAfterMs: h.syncFailingAfterSeconds * 1000,
      now: ctx.now,
    });
    this.notifier = new SystemdNotifier({ logger: ctx.logger, env: ctx.env });
    this.jobs = new JobRunner({ logger: ctx.logger, jobs: this.#jobSpecs(), ...(ctx.config.jobs.timezone ? { timezone: ctx.config.jobs.timezone } : {}), now: ctx.now });
    this.#countDevices = () => ctx.store.entities.deviceCount();
  }

  /** Starts the HTTP listener (if configured), the jobs and the health loop, then tells systemd READY=1. */
  async start(): Promise<void> {
    const { http } = this.#ctx.config;
    if (http.port !== null) {
      // Loaded only when the listener is on: the daemon's resident memory does not carry prom-client otherwise.
      const [{ ControlServer }, { GatewayMetrics }] = await Promise.all([import('./http.js'), import('./metrics.js')]);
      const ctx = this.#ctx;
      const metrics = new GatewayMetrics({
        ingest: () => ctx.ingest.metrics(),
        store: () => ctx.store.status(ctx.now()),
        scheduler: () => ctx.scheduler?.status() ?? null,
        runner: ctx.runner,
        transport: ctx.transport,
        health: () => this.health.current(),
      });
      const server = new ControlServer({ host: http.host, port: http.port, logger: ctx.logger, handlers: this.#handlers(metrics) });
      this.#httpUrl = (await server.listen()).url;
      this.#http = server;
    }
    this.jobs.start();
    const report = this.health.check();
    await this.notifier.ready(this.statusLine(report));
    const wd = this.notifier.watchdogMs;
    // sd_watchdog_enabled(3): notify at least twice per period; never slower than the health interval.
    const every = Math.max(100, Math.min(this.#ctx.config.health.intervalMs, wd === null ? Infinity : wd / 2));
    this.#timer = setInterval(() => this.#tick(), every);
    this.#timer.unref();
    this.#log.info({ notify: this.notifier.backend.name, watchdogMs: wd, healthEveryMs: every, http: this.#httpUrl }, 'operations started');
  }

  get httpUrl(): string | null {
    return this.#httpUrl;
  }

  #tick(): void {
    let report: HealthReport;
    try {
      report = this.health.check();
    } catch (err) {
      this.#log.error({ err }, 'health check failed');
      return;
    }
    if (report.watchdogOk) void this.notifier.watchdog();
    else this.#log.warn({ reasons: report.reasons }, 'unhealthy: withholding the systemd watchdog');
    void this.notifier.status(this.statusLine(report));
  }

  /** STATUS= line: devices, pending, last sync, mode (issue 5 §2). */
  statusLine(report: HealthReport = this.health.current()): string {
    const st = this.#ctx.status();
    const oldest = st.oldestPendingAgeMs === null ? '' : ` (oldest ${Math.round(st.oldestPendingAgeMs / 1000)}s)`;
    const last = st.lastSyncAt === null ? 'never' : `${new Date(st.lastSyncAt).toISOString().slice(0, 19)}Z ${st.lastResult?.ok === false ? 'failed' : 'ok'}`;
    const mode = st.scheduler?.mode ?? (st.syncConfigured ? 'stopped' : 'offline (no credentials)');
    const bad = report.healthy ? '' : `; UNHEALTHY: ${report.reasons.join('; ')}`;
    return `${this.#countDevices()} devices, ${st.pending} pending${oldest}, last sync ${last}, ${mode}, ${st.brokerClients} mqtt clients${bad}`;
  }

  status(): OpsStatus {
    return {
      ...this.#ctx.status(),
      source: 'daemon',
      pid: process.pid,
      uptimeSeconds: Math.round((this.#ctx.now() - this.#startedAt) / 1000),
      devices: this.#countDevices(),
      health: this.health.current(),
      jobs: this.jobs.status(),
      http: this.#httpUrl,
    };
  }

  /** Runs a cycle now (full: reconcile from last_sync null). Wraps failures as 502 for the control endpoint. */
  async syncNow(full: boolean): Promise<CycleReport> {
    const { scheduler, runner } = this.#ctx;
    if (!scheduler || !runner) {
      throw new GatewayError('CONFIG_INVALID', 'sync is not configured: set server.clientId and server.clientSecret', { status: 409 });
    }
    if (full) runner.requestFullResync();
    try {
      return await scheduler.syncNow();
    } catch (err) {
      const code = err instanceof GatewayError ? err.code : 'INTERNAL';
      throw new GatewayError(code, `sync cycle failed: ${err instanceof Error ? err.message : String(err)}`, { status: 502, cause: err });
    }
  }

  /** First step of a stop: STOPPING=1, no new HTTP requests or job runs, health loop off. */
  async beginStop(): Promise<void> {
    void this.notifier.stopping(`stopping: ${this.statusLine()}`);
    clearInterval(this.#timer);
    await Promise.all([this.#http?.close(), this.jobs.stop()]);
    this.#http = undefined;
  }

  /** Last step, after the store closed. */
  async finish(): Promise<void> {
    this.health.stop();
    await this.notifier.flush();
  }

  #jobSpecs(): JobSpec[] {
    const { jobs } = this.#ctx.config;
    const { store, now } = this.#ctx;
    const specs: JobSpec[] = [];
    if (jobs.reconcile.enabled) {
      specs.push({
        name: 'reconcile',
        schedule: jobs.reconcile.schedule,
        run: async () => {
          if (!this.#ctx.scheduler) return { skipped: 'sync not configured' };
          const r = await this.syncNow(true);
          return { pulled: r.pulled, pushed: r.pushed, conflicts: r.conflicts, fullResync: r.fullResync };
        },
      });
    }
    if (jobs.maintenance.enabled) specs.push({ name: 'maintenance', schedule: jobs.maintenance.schedule, run: () => maintainStore(store) });
    if (jobs.pruneConflicts.enabled) {
      const keep = jobs.pruneConflicts.keepDays;
      specs.push({ name: 'pruneConflicts', schedule: jobs.pruneConflicts.schedule, run: () => pruneConflicts(store, keep, now()) });
    }
    return specs;
  }

  #handlers(metrics: GatewayMetrics): ControlHandlers {
    return {
      health: () => {
        const r = this.health.check();
        return { healthy: r.healthy, body: { status: r.healthy ? 'ok' : 'unhealthy', reasons: r.reasons, checks: r.checks, eventLoopLagMs: r.eventLoopLagMs, at: new Date(r.at).toISOString() } };
      },
      metrics: async () => ({ contentType: metrics.contentType(), text: await metrics.metrics() }),
      status: () => this.status(),
      sync: (full) => this.syncNow(full),
      runJob: async (name) => {
        if (!this.jobs.names().includes(name)) throw new GatewayError('NOT_FOUND', `no job ${JSON.stringify(name)}; jobs: ${this.jobs.names().join(', ') || 'none enabled'}`);
        return this.jobs.run(name);
      },
    };
  }
}

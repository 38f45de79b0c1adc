/**
 * What the loopback listener (http.ts) and the scheduled jobs do with the running pipeline (docs/operations.md): health
 * (side-effect free), Prometheus metrics, the full status, a sync now (or a full reconcile), a job now; and the job
 * specs themselves (reconcile, store maintenance, conflict-log pruning).
 */
import type { GatewayConfig } from '../config/gateway-config.js';
import { GatewayError } from '../errors.js';
import type { GatewayStore } from '../store/index.js';
import type { CycleReport, SyncScheduler } from '../sync/index.js';
import type { HealthMonitor, HealthReport } from './health.js';
import type { ControlHandlers } from './http.js';
import { maintainStore, pruneConflicts, type JobRunner, type JobSpec, type JobStatus } from './jobs.js';
import type { GatewayMetrics } from './metrics.js';
import type { DaemonStatus } from './status.js';
import type { InstrumentedRunner } from './sync-stats.js';

/** What GET /status and `status` (daemon path) show. */
export interface OpsStatus extends DaemonStatus {
  readonly source: 'daemon';
  /** The package version running. */
  readonly version: string;
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly devices: number;
  readonly health: HealthReport;
  readonly jobs: JobStatus[];
  readonly http: string | null;
}

export interface ControlContext {
  readonly version: string;
  readonly store: GatewayStore;
  readonly scheduler: SyncScheduler | undefined;
  readonly runner: InstrumentedRunner | undefined;
  readonly health: HealthMonitor;
  readonly jobs: () => JobRunner | undefined;
  readonly status: () => OpsStatus;
}

/** Runs a cycle now (full: a reconcile from last_sync null). Failures become 502 for the control endpoint. */
export async function syncNow(ctx: Pick<ControlContext, 'scheduler' | 'runner'>, full: boolean): Promise<CycleReport> {
  const { scheduler, runner } = ctx;
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

/** The scheduled jobs the config enables. */
export function jobSpecs(config: GatewayConfig, ctx: Pick<ControlContext, 'store' | 'scheduler' | 'runner'>, now: () => number): JobSpec[] {
  const { jobs } = config;
  const specs: JobSpec[] = [];
  if (jobs.reconcile.enabled) {
    specs.push({
      name: 'reconcile',
      schedule: jobs.reconcile.schedule,
      run: async () => {
        if (!ctx.scheduler) return { skipped: 'sync not configured' };
        const r = await syncNow(ctx, true);
        return { pulled: r.pulled, pushed: r.pushed, conflicts: r.conflicts, fullResync: r.fullResync };
      },
    });
  }
  if (jobs.maintenance.enabled) specs.push({ name: 'maintenance', schedule: jobs.maintenance.schedule, run: () => maintainStore(ctx.store) });
  if (jobs.pruneConflicts.enabled) {
    const keep = jobs.pruneConflicts.keepDays;
    specs.push({ name: 'pruneConflicts', schedule: jobs.pruneConflicts.schedule, run: () => pruneConflicts(ctx.store, keep, now()) });
  }
  return specs;
}

/** The listener's handlers. GET /healthz evaluates without side effects (HealthMonitor.check). */
export function controlHandlers(ctx: ControlContext, metrics: GatewayMetrics): ControlHandlers {
  return {
    health: () => {
      const r = ctx.health.check();
      return { healthy: r.healthy, body: { status: r.healthy ? 'ok' : 'unhealthy', version: ctx.version, reasons: r.reasons, checks: r.checks, eventLoopLagMs: r.eventLoopLagMs, at: new Date(r.at).toISOString() } };
    },
    metrics: async () => ({ contentType: metrics.contentType(), text: await metrics.metrics() }),
    status: () => ctx.status(),
    sync: (full) => syncNow(ctx, full),
    runJob: async (name) => {
      const jobs = ctx.jobs();
      if (!jobs?.names().includes(name)) throw new GatewayError('NOT_FOUND', `no job ${JSON.stringify(name)}; jobs: ${jobs?.names().join(', ') || 'none enabled'}`);
      return jobs.run(name);
    },
  };
}

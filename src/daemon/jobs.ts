/**
 * Scheduled jobs (docs/operations.md §Scheduled jobs) on cron schedules (util/cron.ts): a periodic full reconcile, WAL
 * checkpoint + PRAGMA optimize, and pruning of the conflict log. A job never overlaps itself: a run that finds the
 * previous one still going — scheduled or manual — is skipped and logged.
 */
import type { Logger } from '../log.js';
import { CronTimer, parseCron, zonedTime, type WallClock } from '../util/cron.js';
import type { GatewayStore } from '../store/index.js';

export type JobResult = Record<string, unknown>;

export interface JobSpec {
  readonly name: string;
  /** Cron expression (5 fields, or 6 with seconds first; util/cron.ts). */
  readonly schedule: string;
  readonly run: () => Promise<JobResult> | JobResult;
}

export interface JobRunStatus {
  readonly at: number;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly result?: JobResult;
  readonly error?: string;
}

export interface JobStatus {
  readonly name: string;
  readonly schedule: string;
  readonly running: boolean;
  readonly runs: number;
  readonly skippedOverlaps: number;
  readonly lastRun: JobRunStatus | null;
  readonly nextRunAt: string | null;
}

export type JobOutcome = { readonly skipped: 'already running' } | JobRunStatus;

interface Entry {
  readonly spec: JobSpec;
  task: CronTimer | undefined;
  running: Promise<JobRunStatus> | undefined;
  runs: number;
  skipped: number;
  last: JobRunStatus | null;
}

export class JobRunner {
  readonly #log: Logger;
  readonly #clock: WallClock | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(options: { logger: Logger; jobs: readonly JobSpec[]; timezone?: string; now?: () => number }) {
    this.#log = options.logger.child({ module: 'jobs' });
    this.#clock = options.timezone ? zonedTime(options.timezone) : undefined;
    this.#now = options.now ?? Date.now;
    for (const spec of options.jobs) {
      if (this.#entries.has(spec.name)) throw new TypeError(`jobs: duplicate job name ${JSON.stringify(spec.name)}`);
      const parsed = parseCron(spec.schedule);
      if (!parsed.ok) throw new TypeError(`jobs: ${spec.name}: expected a cron expression, given ${JSON.stringify(spec.schedule)} (${parsed.problem})`);
      this.#entries.set(spec.name, { spec, task: undefined, running: undefined, runs: 0, skipped: 0, last: null });
    }
  }

  start(): void {
    for (const entry of this.#entries.values()) {
      if (entry.task) continue;
      const parsed = parseCron(entry.spec.schedule);
      if (!parsed.ok) continue; // refused at construction
      entry.task = new CronTimer({ schedule: parsed.schedule, run: () => void this.run(entry.spec.name), ...(this.#clock ? { clock: this.#clock } : {}) });
      entry.task.start();
      this.#log.info({ job: entry.spec.name, schedule: entry.spec.schedule, next: isoOrNull(entry.task.nextRun()) }, 'job scheduled');
    }
  }

  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Runs a job now unless it is already running (then resolves `{ skipped }` at once). Never rejects. */
  run(name: string): Promise<JobOutcome> {
    const entry = this.#entries.get(name);
    if (!entry) return Promise.reject(new RangeError(`no job named ${JSON.stringify(name)} (jobs: ${this.names().join(', ')})`));
    if (entry.running) {
      entry.skipped += 1;
      this.#log.warn({ job: name }, 'job skipped: its previous run is still going');
      return Promise.resolve({ skipped: 'already running' });
    }
    const running = this.#execute(entry).finally(() => {
      entry.running = undefined;
    });
    entry.running = running;
    return running;
  }

  async #execute(entry: Entry): Promise<JobRunStatus> {
    const at = this.#now();
    const started = performance.now();
    const job = entry.spec.name;
    this.#log.info({ job }, 'job started');
    let status: JobRunStatus;
    try {
      const result = await entry.spec.run();
      status = { at, ok: true, durationMs: Math.round(performance.now() - started), result };
      this.#log.info({ job, durationMs: status.durationMs, ...result }, 'job finished');
    } catch (err) {
      status = { at, ok: false, durationMs: Math.round(performance.now() - started), error: err instanceof Error ? err.message : String(err) };
      this.#log.error({ job, err }, 'job failed');
    }
    entry.runs += 1;
    entry.last = status;
    return status;
  }

  status(): JobStatus[] {
    return [...this.#entries.values()].map((e) => ({
      name: e.spec.name,
      schedule: e.spec.schedule,
      running: e.running !== undefined,
      runs: e.runs,
      skippedOverlaps: e.skipped,
      lastRun: e.last,
      nextRunAt: isoOrNull(e.task?.nextRun() ?? null),
    }));
  }

  /** Stops the schedules; waits (bounded) for runs in flight. */
  async stop(boundMs = 5000): Promise<void> {
    const inflight: Promise<unknown>[] = [];
    for (const entry of this.#entries.values()) {
      entry.task?.stop();
      entry.task = undefined;
      if (entry.running) inflight.push(entry.running);
    }
    if (inflight.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(inflight), new Promise((r) => (timer = setTimeout(r, boundMs)))]);
    clearTimeout(timer);
  }
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** WAL checkpoint (TRUNCATE: the -wal file shrinks back) and PRAGMA optimize, through the store's maintenance. */
export async function maintainStore(store: Pick<GatewayStore, 'maintenance'>): Promise<JobResult> {
  return { checkpoint: await store.maintenance.checkpoint() };
}

/** Deletes conflict-log rows older than `keepDays`. */
export async function pruneConflicts(store: Pick<GatewayStore, 'conflicts'>, keepDays: number, nowMs: number): Promise<JobResult> {
  const deleted = await store.conflicts.prune(nowMs - keepDays * 86_400_000);
  return { deleted, keepDays };
}

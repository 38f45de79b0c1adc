/**
 * Scheduled jobs on PostgreSQL run once across instances: each instance's timer calls `maintainPg`, which takes a
 * transaction-scoped advisory lock (a second instance at the same moment skips) and runs only when the job's last
 * run, by any instance, recorded in `job_runs` with the database's clock, is at least `minIntervalSeconds` old.
 */
import type pg from 'pg';
import type { MaintenanceOptions, MaintenanceReport } from '../store/contract.js';
import { inTransaction } from './connect.js';
import { ADVISORY } from './schema.js';
import { CountRowSchema, ValueRowSchema, rowOf } from './rows.js';
import { runSql, type Queryable, type SqlName } from './sql.js';

const JOB = 'maintenance';

async function count(db: Queryable, name: SqlName, params: unknown[]): Promise<number> {
  return rowOf(CountRowSchema, (await runSql(db, name, params)).rows, name)?.n ?? 0;
}

async function nowMs(client: Queryable): Promise<number> {
  const us = rowOf(ValueRowSchema, (await runSql(client, 'now')).rows, 'now')?.value ?? 0;
  return Math.floor(us / 1000);
}

/**
 * Deletes tombstones every client of their home has acknowledged past, or older than the retention; records per home
 * the highest purged seq. Returns how many were deleted. The retention horizon is taken from the instance's wall
 * clock (`clock`, epoch ms): it is days long, so the instances' few ms of skew do not matter, and tests can move it.
 */
export async function purgeTombstonesPg(db: Queryable, retentionSeconds: number, clock: () => number): Promise<number> {
  const horizonUs = Math.floor(clock() * 1000) - retentionSeconds * 1_000_000;
  return count(db, 'purgeTombstones', [horizonUs]);
}

/** One maintenance run across all instances; undefined when another instance ran it recently or runs it now. */
export async function maintainPg(pool: pg.Pool, options: MaintenanceOptions, clock: () => number): Promise<MaintenanceReport | undefined> {
  return inTransaction(pool, async (client) => {
    const locked = (await runSql(client, 'tryJobLock', [ADVISORY.jobs])).rows[0]?.locked === true;
    if (!locked) return undefined;
    const now = await nowMs(client);
    const last = rowOf(ValueRowSchema, (await runSql(client, 'jobLastRun', [JOB])).rows, 'job_runs')?.value ?? null;
    if (last !== null && now - last < options.minIntervalSeconds * 1000) return undefined;
    const cutoffMs = clock() - options.retentionSeconds * 1000;
    const report: MaintenanceReport = {
      tombstones: await purgeTombstonesPg(client, options.retentionSeconds, clock),
      results: await count(client, 'purgeResults', [cutoffMs]),
      conflicts: await count(client, 'purgeConflicts', [cutoffMs * 1000]),
      tokens: await count(client, 'purgeTokens', [clock()]),
      nonces: await count(client, 'purgeNonces', [Math.floor(clock() / 1000) - options.nonceWindowSeconds - 1]),
      syncHistory: await count(client, 'purgeHistory', [clock() - options.historyRetentionSeconds * 1000, options.historyMaxPerEntity]),
    };
    await runSql(client, 'jobRan', [JOB, now]);
    return report;
  });
}

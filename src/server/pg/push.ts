/**
 * Applying a sync_push on PostgreSQL: one transaction that first takes the home's row lock (FOR NO KEY UPDATE), so
 * the pushes of a home are decided one after the other whatever instance receives them (last-write-wins compares
 * against the version the previous push committed) and the watermarks issued to the home order against them
 * (docs/protocol.md §Watermark across instances). Under the lock every change gets seq = max(now, clock + 1) from the
 * database's clock; the plan (store/plan.ts, shared with SQLite) is written in one statement; the home's clock
 * becomes max(last seq, now at the lock) and is the push's server_time. A NOTIFY in the same transaction wakes the
 * live waits of the home on every instance when, and only if, the push commits. The plan's sync history records and
 * digest changes are written by the same statement (docs/protocol.md §Sync history, §Convergence digest). The commit is durable
 * (synchronous_commit on): a 200 means the push is on disk.
 */
import type pg from 'pg';
import type { Micros, WirePushChange } from '../../protocol/index.js';
import type { AppliedPush } from '../store/contract.js';
import { entityKey, outcomeFromRecord, planPush, pushedKeys, type PushPlan, type StoredVersion } from '../store/plan.js';
import { isAddressable, type PushContext, type PushOutcome } from '../store/validate.js';
import { ClockRowSchema, PushVersionRowSchema, ResultRowSchema, rowOf, rowsOf } from './rows.js';
import { runSql } from './sql.js';
import { GatewayError } from '../../errors.js';
import { inTransaction } from './connect.js';

export interface PushNotice {
  readonly homeId: string;
  readonly originClientId: string;
  readonly seq: Micros;
}

async function readPrior(client: pg.PoolClient, ctx: PushContext, changes: readonly WirePushChange[]): Promise<Map<string, PushOutcome>> {
  const ids = [...new Set(changes.filter(isAddressable).map((c) => c.client_sync_id))];
  const res = await runSql(client, 'priorResults', [ctx.clientId, ids]);
  return new Map(rowsOf(ResultRowSchema, res.rows, 'push_results').map((r) => [r.client_sync_id, outcomeFromRecord(r)]));
}

async function readStored(client: pg.PoolClient, ctx: PushContext, changes: readonly WirePushChange[]): Promise<Map<string, StoredVersion>> {
  const keys = pushedKeys(changes, isAddressable);
  const res = await runSql(client, 'storedVersions', [ctx.homeId, keys.map((k) => k[0]), keys.map((k) => k[1])]);
  return new Map(rowsOf(PushVersionRowSchema, res.rows, 'entities').map((r) => [entityKey(r.entity_type, r.entity_id), r]));
}

function writeParams(ctx: PushContext, plan: PushPlan, clock: Micros, recordedAt: number): unknown[] {
  const e = plan.entities;
  const r = plan.results;
  const h = plan.history;
  const buckets: number[] = [];
  const sums: string[] = [];
  plan.digest.forEach((change, bucket) => {
    if (change === 0n) return;
    buckets.push(bucket);
    sums.push(change.toString());
  });
  return [
    ctx.homeId,
    // entities ($2–$16)
    e.map((x) => x.entity_type),
    e.map((x) => x.entity_id),
    e.map((x) => x.data),
    e.map((x) => x.updated_at),
    e.map((x) => x.sync_id),
    e.map((x) => x.deleted),
    e.map((x) => x.seq),
    e.map((x) => x.created_seq),
    e.map((x) => x.priority),
    e.map((x) => x.origin_client),
    e.map((x) => x.attrs),
    e.map((x) => x.foreign_seq),
    e.map((x) => x.claimed_at),
    e.map((x) => x.bucket),
    e.map((x) => x.hash),
    // results ($17–$25)
    ctx.clientId,
    r.map((x) => x.client_sync_id),
    r.map((x) => x.status),
    r.map((x) => x.server_sync_id),
    r.map((x) => x.entity_type),
    r.map((x) => x.entity_id),
    r.map((x) => x.detail),
    r.map((x) => x.applications),
    recordedAt,
    // conflicts ($26–$27), the home's clock ($28)
    plan.conflictRows.map((x) => x.seq),
    plan.conflictRows.map((x) => x.entry),
    clock,
    // history ($29–$40)
    h.map((x) => x.entityType),
    h.map((x) => x.entityId),
    h.map((x) => x.why),
    h.map((x) => x.reason),
    h.map((x) => x.operation),
    h.map((x) => JSON.stringify(x.data)),
    h.map((x) => (x.attributes === undefined ? null : JSON.stringify(x.attributes))),
    h.map((x) => x.updatedAt),
    h.map((x) => x.claimedAt ?? null),
    h.map((x) => x.syncId),
    h.map((x) => x.writtenBy),
    h.map((x) => x.decidedBy),
    // digest ($41–$42): per-bucket changes, added modulo 2^64 in SQL
    buckets,
    sums,
  ];
}

/** Runs a push in one transaction on a pooled connection; its NOTIFY (when something was written) rides the commit. */
export async function applyPushPg(
  pool: pg.Pool,
  ctx: PushContext,
  changes: readonly WirePushChange[],
  options: { clock: () => number; notifyPayload: (notice: PushNotice) => string },
): Promise<AppliedPush> {
  return inTransaction(pool, async (client) => {
    const lock = rowOf(ClockRowSchema, (await runSql(client, 'lockHome', [ctx.homeId])).rows, 'homes');
    if (lock === undefined) throw new GatewayError('STORE', `home ${JSON.stringify(ctx.homeId)} does not exist`);
    const prior = await readPrior(client, ctx, changes);
    const stored = await readStored(client, ctx, changes);
    let clock = lock.clock;
    // The clamp's receive time is the database's clock at the lock (docs/protocol.md §Clamp).
    const clampUs = ctx.clampToleranceUs === undefined ? undefined : lock.now + ctx.clampToleranceUs;
    const plan = planPush({
      ctx: clampUs === undefined ? ctx : { ...ctx, clampUs },
      changes,
      prior,
      stored,
      nextSeq: () => {
        clock = Math.max(lock.now, clock + 1);
        return clock;
      },
      recordable: isAddressable, // a result whose ids are not well-formed text is answered, never stored
    });
    const serverTime = Math.max(clock, lock.now);
    await runSql(client, 'writePush', writeParams(ctx, plan, serverTime, options.clock()));
    if (plan.wrote) {
      const notice = { homeId: ctx.homeId, originClientId: ctx.clientId, seq: serverTime };
      await runSql(client, 'notify', [options.notifyPayload(notice)]);
    }
    return { applied: plan.applied, conflicts: plan.conflicts, serverTime, wrote: plan.wrote, clamped: plan.clamped, history: plan.history.length };
  });
}

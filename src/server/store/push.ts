/**
 * Applying a sync_push on SQLite (seed §3, §4, §Conflict Resolution; docs/protocol.md §Conflicts, §Idempotency).
 *
 * The whole push runs in ONE transaction (synchronous=FULL), so the 200 means all of it is durable. The decision is
 * plan.ts's, shared with PostgreSQL: this module reads its inputs (the stored results of the pushed client_sync_ids
 * and the stored versions of the pushed entities, one query each per push via json_each) and writes what it decided:
 * entities, results, conflicts, sync history records and the home's digest sums (docs/protocol.md §Sync history,
 * §Convergence digest).
 */
import { z } from 'zod';
import type { WirePushChange } from '../../protocol/index.js';
import type { AppliedPush } from './contract.js';
import type { ServerDb } from '../db.js';
import type { DigestStore } from './digests.js';
import type { HistoryStore } from './history.js';
import { entityKey, outcomeFromRecord, planPush, pushedKeys, type PushPlan, type StoredVersion } from './plan.js';
import type { Sequencer } from './sequencer.js';
import { isAddressable, type PushContext, type PushOutcome } from './validate.js';
import { ResultRowSchema, rowsOf } from './rows.js';

export type { PushContext, PushOutcome } from './validate.js';
export type PushResult = AppliedPush;

const Int = z.number().int();

/** A stored version as SQLite returns it (deleted as 0/1), checked at the boundary. */
const StoredRowSchema = z.object({
  entity_type: z.string(),
  entity_id: z.string(),
  data: z.string(),
  updated_at: Int,
  sync_id: z.string(),
  deleted: z.union([z.literal(0), z.literal(1)]).transform((d) => d === 1),
  seq: Int,
  created_seq: Int,
  origin_client: z.string().nullable(),
  attrs: z.string().nullable(),
  foreign_seq: Int,
  claimed_at: Int.nullable(),
  hash: z.string().nullable(),
});

export class PushApplier {
  private readonly db: ServerDb;
  private readonly seq: Sequencer;
  private readonly clock: () => number;
  /** Absent only in the benchmark's baseline (a push without the sync history and digest writes). */
  private readonly history: HistoryStore | undefined;
  private readonly digests: DigestStore | undefined;
  private readonly stmts;

  constructor(options: { db: ServerDb; sequencer: Sequencer; clock: () => number; history?: HistoryStore; digests?: DigestStore }) {
    this.db = options.db;
    this.seq = options.sequencer;
    this.clock = options.clock;
    this.history = options.history;
    this.digests = options.digests;
    const db = this.db;
    this.stmts = {
      priorResults: db.prepare(`
        SELECT client_sync_id, status, server_sync_id, entity_type, entity_id, detail FROM push_results
        WHERE client_id = ? AND client_sync_id IN (SELECT value FROM json_each(?))`),
      putResult: db.prepare(`
        INSERT INTO push_results
          (client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(client_id, client_sync_id) DO UPDATE SET applications = applications + excluded.applications`),
      // CROSS JOIN keeps json_each as the outer loop: one primary-key lookup per pushed key.
      storedVersions: db.prepare(`
        SELECT e.entity_type, e.entity_id, e.data, e.updated_at, e.sync_id, e.deleted, e.seq, e.created_seq, e.origin_client,
          e.attrs, e.foreign_seq, e.claimed_at, e.hash
        FROM json_each(@keys) AS j CROSS JOIN entities AS e
        ON e.home_id = @home AND e.entity_type = j.value ->> 0 AND e.entity_id = j.value ->> 1`),
      putEntity: db.prepare(`
        INSERT INTO entities
          (home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, origin_client,
           attrs, foreign_seq, claimed_at, bucket, hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(home_id, entity_type, entity_id) DO UPDATE SET
          data = excluded.data, updated_at = excluded.updated_at, sync_id = excluded.sync_id,
          deleted = excluded.deleted, seq = excluded.seq, created_seq = excluded.created_seq,
          origin_client = excluded.origin_client, attrs = excluded.attrs, foreign_seq = excluded.foreign_seq,
          claimed_at = excluded.claimed_at, bucket = excluded.bucket, hash = excluded.hash`),
      putConflict: db.prepare('INSERT INTO conflicts (client_id, seq, entry) VALUES (?, ?, ?)'),
      applications: db
        .prepare('SELECT applications FROM push_results WHERE client_id = ? AND client_sync_id = ?')
        .pluck(),
    };
  }

  /** Applies a whole push in one transaction. */
  apply(ctx: PushContext, changes: readonly WirePushChange[]): AppliedPush {
    return this.db.transaction((): AppliedPush => {
      const plan = planPush({
        ctx,
        changes,
        prior: this.loadResults(ctx.clientId, changes),
        stored: this.loadEntities(ctx.homeId, changes),
        nextSeq: () => this.seq.next(),
        recordable: isAddressable, // a result whose ids are not well-formed text is answered, never stored
      });
      this.write(ctx, plan);
      this.seq.persistInTx();
      const { applied, conflicts, wrote, clamped } = plan;
      return { applied, conflicts, serverTime: this.seq.current(), wrote, clamped, history: plan.history.length };
    })();
  }

  private write(ctx: PushContext, plan: PushPlan): void {
    const recordedAt = this.clock();
    for (const e of plan.entities) {
      this.stmts.putEntity.run(
        ctx.homeId, e.entity_type, e.entity_id, e.data, e.updated_at, e.sync_id, e.deleted ? 1 : 0, e.seq, e.created_seq,
        e.priority, e.origin_client, e.attrs, e.foreign_seq, e.claimed_at, e.bucket, e.hash,
      );
    }
    for (const r of plan.results) {
      this.stmts.putResult.run(
        ctx.clientId, r.client_sync_id, r.status, r.server_sync_id, r.entity_type, r.entity_id, r.detail, r.applications, recordedAt,
      );
    }
    for (const c of plan.conflictRows) this.stmts.putConflict.run(ctx.clientId, c.seq, c.entry);
    if (this.history !== undefined) for (const h of plan.history) this.history.record({ ...h, homeId: ctx.homeId }, recordedAt);
    this.digests?.add(ctx.homeId, plan.digest);
  }

  private loadResults(clientId: string, changes: readonly WirePushChange[]): Map<string, PushOutcome> {
    const ids = JSON.stringify(changes.filter(isAddressable).map((c) => c.client_sync_id));
    const rows = rowsOf(ResultRowSchema, this.stmts.priorResults.all(clientId, ids), 'push_results');
    return new Map(rows.map((r) => [r.client_sync_id, outcomeFromRecord(r)]));
  }

  private loadEntities(homeId: string, changes: readonly WirePushChange[]): Map<string, StoredVersion> {
    const keys = JSON.stringify(pushedKeys(changes, isAddressable));
    const rows = rowsOf(StoredRowSchema, this.stmts.storedVersions.all({ home: homeId, keys }), 'entities');
    return new Map(rows.map((r) => [entityKey(r.entity_type, r.entity_id), r]));
  }

  /** How many times the change `clientSyncId` of `clientId` was written (0 when never seen). */
  applicationCount(clientId: string, clientSyncId: string): number {
    const n: unknown = this.stmts.applications.get(clientId, clientSyncId);
    return typeof n === 'number' ? n : 0;
  }
}

/**
 * Applying a sync_push (seed §3, §4, §Conflict Resolution; design.md §Conflicts, §Idempotency).
 *
 * The whole push runs in ONE transaction (synchronous=FULL), so the 200 means all of it is durable. Each change is
 * decided on its own: a change the server cannot accept is "rejected" with a code and the rest of the batch applies
 * (docs/protocol.md §Per-change rejection). A client_sync_id the client already pushed returns the stored result and
 * changes nothing. Stored results and stored versions are read in one query each per push (json_each), not one
 * query per change.
 *
 * Extensions (docs/protocol.md): an entity_state pushed over a live one is merged attribute by attribute
 * (state-merge.ts); `updated_at` is clamped to the receive time plus a tolerance for ordering (validate.ts); every
 * losing and every overwritten version goes to the sync history (history.ts); every write moves the home's digest
 * (digests.ts). All of it in the push's one transaction.
 */
import {
  ENTITY_PRIORITY,
  classifyConflict,
  formatTimestamp,
  normaliseEntityType,
  resolveLastWriteWins,
  type ApplyStatus,
  type Micros,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
  type WireVersion,
  encodeAttrMeta,
  metaOfWrite,
} from '../../protocol/index.js';
import type { ServerDb } from '../db.js';
import { DigestDelta, rowDigest, type DigestStore } from './digests.js';
import type { HistoryRecord, HistoryStore } from './history.js';
import type { Sequencer } from './sequencer.js';
import { planStateMerge } from './state-merge.js';
import { isAddressable, validateChange, type Candidate, type PushContext, type PushOutcome } from './validate.js';

export type { PushContext, PushOutcome } from './validate.js';

export interface PushResult {
  readonly applied: WireApplied[];
  readonly conflicts: WireConflict[];
  readonly serverTime: Micros;
  /** Changes whose updated_at the clamp moved. */
  readonly clamped: number;
  /** Versions recorded in the sync history. */
  readonly history: number;
}

interface StoredRow {
  data: string;
  updated_at: number;
  sync_id: string;
  deleted: number;
  seq: number;
  created_seq: number;
  origin_client: string | null;
  attrs: string | null;
  foreign_seq: number;
  claimed_at: number | null;
  bucket: number;
  hash: string | null;
}

interface ResultRow {
  client_sync_id: string;
  status: string;
  server_sync_id: string | null;
  entity_type: string;
  entity_id: string;
  detail: string | null;
}

interface Detail {
  error?: { code: string; message: string };
  conflict?: WireConflict;
  clamped_to?: string;
}

function entityKey(type: string, id: string): string {
  return `${type}\u0000${id}`;
}

function toOutcome(row: ResultRow): PushOutcome {
  const detail: Detail = row.detail === null ? {} : (JSON.parse(row.detail) as Detail); // written by this class
  const applied: WireApplied = {
    client_sync_id: row.client_sync_id,
    server_sync_id: row.server_sync_id,
    status: row.status as ApplyStatus,
    entity_type: row.entity_type,
    entity_id: row.entity_id,
  };
  if (detail.error) applied.error = detail.error;
  if (detail.clamped_to) applied.clamped_to = detail.clamped_to;
  return detail.conflict ? { applied, conflict: detail.conflict } : { applied };
}

function storedVersion(row: Pick<StoredRow, 'updated_at' | 'data' | 'sync_id' | 'deleted'>, entityId: string): WireVersion {
  const ts = formatTimestamp(row.updated_at);
  const data = { id: entityId, sync_id: row.sync_id, updated_at: ts, ...(JSON.parse(row.data) as Record<string, unknown>) };
  return { operation: row.deleted ? 'delete' : 'update', data, updated_at: ts, sync_id: row.sync_id, deleted: row.deleted === 1 };
}

function candidateVersion(c: Candidate): WireVersion {
  const ts = formatTimestamp(c.claimedAt ?? c.updatedAt);
  return {
    operation: c.op,
    data: { id: c.entityId, sync_id: c.syncId, updated_at: ts, ...c.body },
    updated_at: ts,
    sync_id: c.syncId,
    deleted: c.deleted,
  };
}

function appliedEntry(c: Candidate, status: 'applied' | 'conflict', serverSyncId: string): WireApplied {
  const entry: WireApplied = { client_sync_id: c.clientSyncId, server_sync_id: serverSyncId, status, entity_type: c.type, entity_id: c.entityId };
  if (c.claimedAt !== undefined) entry.clamped_to = formatTimestamp(c.updatedAt);
  return entry;
}

/** The conflict entry of a decision, with the clamp flagged. */
function conflictEntry(c: Candidate, stored: StoredRow, reason: string, clientWins: boolean): WireConflict {
  const conflict: WireConflict = {
    entity_type: c.type,
    entity_id: c.entityId,
    type: classifyConflict({ deleted: stored.deleted === 1 }, { deleted: c.deleted, operation: c.op }),
    reason,
    server_version: storedVersion(stored, c.entityId),
    client_version: candidateVersion(c),
    resolution: clientWins ? 'client_wins' : 'server_wins',
    client_sync_id: c.clientSyncId,
  };
  if (c.claimedAt !== undefined) conflict.clamped_to = formatTimestamp(c.updatedAt);
  return conflict;
}

/** The history record of a whole version (entity-level decisions). */
function versionRecord(
  c: Candidate,
  row: Pick<StoredRow, 'data' | 'updated_at' | 'claimed_at' | 'sync_id' | 'deleted' | 'origin_client'>,
  why: 'lost' | 'overwritten',
  reason: string,
  decidedBy: string | null,
): Omit<HistoryRecord, 'homeId'> {
  return {
    entityType: c.type,
    entityId: c.entityId,
    why,
    reason,
    operation: row.deleted === 1 ? 'delete' : 'update',
    data: JSON.parse(row.data) as Record<string, unknown>, // a stored or validated JSON object
    updatedAt: row.updated_at,
    claimedAt: row.claimed_at,
    syncId: row.sync_id,
    writtenBy: row.origin_client,
    decidedBy,
  };
}

function objectOf(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** A candidate in the stored columns' shape (its history record when it loses). */
function candidateRow(c: Candidate, ctx: PushContext): Pick<StoredRow, 'data' | 'updated_at' | 'claimed_at' | 'sync_id' | 'deleted' | 'origin_client'> {
  return { data: c.bodyText, updated_at: c.updatedAt, claimed_at: c.claimedAt ?? null, sync_id: c.syncId, deleted: c.deleted ? 1 : 0, origin_client: ctx.clientId };
}

/** Per-push working state: what the push has already decided and the current version of each touched entity. */
interface PushState {
  readonly ctx: PushContext;
  readonly results: Map<string, PushOutcome>;
  readonly entities: Map<string, StoredRow>;
  readonly recordedAt: number;
  readonly digest: DigestDelta;
  readonly tally: { clamped: number; history: number };
}

export class PushApplier {
  private readonly db: ServerDb;
  private readonly seq: Sequencer;
  private readonly clock: () => number;
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
          e.attrs, e.foreign_seq, e.claimed_at, e.bucket, e.hash
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
  apply(ctx: PushContext, changes: readonly WirePushChange[]): PushResult {
    return this.db.transaction(() => {
      const state: PushState = {
        ctx,
        results: this.loadResults(ctx.clientId, changes),
        entities: this.loadEntities(ctx.homeId, changes),
        recordedAt: this.clock(),
        digest: new DigestDelta(),
        tally: { clamped: 0, history: 0 },
      };
      const applied: WireApplied[] = [];
      const conflicts: WireConflict[] = [];
      for (const change of changes) {
        let outcome = state.results.get(change.client_sync_id);
        if (outcome === undefined) {
          outcome = this.applyNew(state, change);
          state.results.set(change.client_sync_id, outcome); // a repeat inside this push gets the same result
        }
        applied.push(outcome.applied);
        if (outcome.conflict) conflicts.push(outcome.conflict);
      }
      this.digests?.apply(state.digest);
      this.seq.persistInTx();
      return { applied, conflicts, serverTime: this.seq.current(), ...state.tally };
    })();
  }

  private loadResults(clientId: string, changes: readonly WirePushChange[]): Map<string, PushOutcome> {
    const ids = JSON.stringify(changes.filter(isAddressable).map((c) => c.client_sync_id));
    const rows = this.stmts.priorResults.all(clientId, ids) as ResultRow[];
    return new Map(rows.map((r) => [r.client_sync_id, toOutcome(r)]));
  }

  private loadEntities(homeId: string, changes: readonly WirePushChange[]): Map<string, StoredRow> {
    const keys: [string, string][] = [];
    for (const c of changes) {
      const type = normaliseEntityType(c.entity_type);
      if (type !== undefined && isAddressable(c)) keys.push([type, c.entity_id]);
    }
    const rows = this.stmts.storedVersions.all({ home: homeId, keys: JSON.stringify(keys) }) as (StoredRow & {
      entity_type: string;
      entity_id: string;
    })[];
    return new Map(rows.map((r) => [entityKey(r.entity_type, r.entity_id), r]));
  }

  private applyNew(state: PushState, change: WirePushChange): PushOutcome {
    const candidate = validateChange(change, state.ctx);
    const { outcome, wrote } = 'type' in candidate ? this.decide(state, candidate) : { outcome: candidate, wrote: false };
    if ('type' in candidate && candidate.claimedAt !== undefined) state.tally.clamped += 1;
    const a = outcome.applied;
    if (!isAddressable(change)) return outcome; // rejected, and cannot be stored as text (validate.ts)
    const detail: Detail | null =
      a.error || outcome.conflict || a.clamped_to ? { error: a.error, conflict: outcome.conflict, clamped_to: a.clamped_to } : null;
    this.stmts.putResult.run(
      state.ctx.clientId,
      a.client_sync_id,
      a.status,
      a.server_sync_id,
      a.entity_type,
      a.entity_id,
      detail === null ? null : JSON.stringify(detail),
      wrote ? 1 : 0,
      state.recordedAt,
    );
    return outcome;
  }

  /** Last-write-wins against the stored version (seed §Conflict Resolution); attribute by attribute for states. */
  private decide(state: PushState, c: Candidate): { outcome: PushOutcome; wrote: boolean } {
    const { ctx } = state;
    const stored = state.entities.get(entityKey(c.type, c.entityId));
    if (stored === undefined) {
      this.write(state, c, undefined);
      return { outcome: { applied: appliedEntry(c, 'applied', c.syncId) }, wrote: true };
    }
    if (
      stored.sync_id === c.syncId &&
      stored.updated_at === c.updatedAt &&
      (stored.deleted === 1) === c.deleted &&
      (c.deleted || stored.data === c.bodyText)
    ) {
      // Identical resubmission of the stored version: applied, nothing written, no new seq.
      return { outcome: { applied: appliedEntry(c, 'applied', stored.sync_id) }, wrote: false };
    }
    if (c.type === 'entity_state' && !c.deleted && stored.deleted === 0) return this.decideAttributes(state, c, stored);
    const decision = resolveLastWriteWins(
      { updatedAt: stored.updated_at, syncId: stored.sync_id, deleted: stored.deleted === 1 },
      { updatedAt: c.updatedAt, syncId: c.syncId, deleted: c.deleted },
    );
    const clientWins = decision.winner === 'client';
    const conflict = !clientWins || stored.origin_client !== ctx.clientId ? conflictEntry(c, stored, decision.reason, clientWins) : undefined;
    if (clientWins) this.remember(state, versionRecord(c, stored, 'overwritten', decision.reason, ctx.clientId));
    else this.remember(state, versionRecord(c, candidateRow(c, ctx), 'lost', decision.reason, stored.origin_client));
    const seq = clientWins ? this.write(state, c, stored) : this.seq.next();
    if (conflict) this.stmts.putConflict.run(ctx.clientId, seq, JSON.stringify(conflict));
    const applied = clientWins ? appliedEntry(c, 'applied', c.syncId) : appliedEntry(c, 'conflict', stored.sync_id);
    return { outcome: conflict ? { applied, conflict } : { applied }, wrote: clientWins };
  }

  /** An entity_state over a live one: merged attribute by attribute (state-merge.ts). */
  private decideAttributes(state: PushState, c: Candidate, stored: StoredRow): { outcome: PushOutcome; wrote: boolean } {
    const { ctx } = state;
    const seq = this.seq.next();
    const plan = planStateMerge(stored, c, ctx, seq);
    for (const record of plan.history) this.remember(state, record);
    if (plan.row !== undefined) {
      const { row } = plan;
      this.put(state, c, {
        data: JSON.stringify(row.body),
        body: row.body,
        updated_at: row.updatedAt,
        sync_id: row.syncId,
        deleted: 0,
        seq,
        created_seq: stored.created_seq,
        origin_client: ctx.clientId,
        attrs: row.attrs,
        foreign_seq: row.foreignSeq,
        claimed_at: row.claimedAt,
      }, stored);
    }
    const conflict = plan.attributes.length > 0 ? { ...conflictEntry(c, stored, plan.reason, plan.clientWon), attributes: plan.attributes } : undefined;
    if (conflict) this.stmts.putConflict.run(ctx.clientId, seq, JSON.stringify(conflict));
    const applied = plan.clientWon ? appliedEntry(c, 'applied', c.syncId) : appliedEntry(c, 'conflict', stored.sync_id);
    if (!plan.clientWon && plan.attributes.length === 0) return { outcome: { applied: appliedEntry(c, 'applied', stored.sync_id) }, wrote: false };
    return { outcome: conflict ? { applied, conflict } : { applied }, wrote: plan.clientWon };
  }

  private remember(state: PushState, record: Omit<HistoryRecord, 'homeId'>): void {
    if (this.history === undefined) return;
    this.history.record({ ...record, homeId: state.ctx.homeId }, state.recordedAt);
    state.tally.history += 1;
  }

  /** Writes the candidate as the entity's current version; returns its seq. */
  private write(state: PushState, c: Candidate, stored: StoredRow | undefined): Micros {
    const seq = this.seq.next();
    const createdSeq = stored !== undefined && stored.deleted === 0 ? stored.created_seq : seq;
    const keepData = c.deleted && stored !== undefined && Object.keys(c.body).length === 0;
    const body = keepData ? (JSON.parse(stored.data) as Record<string, unknown>) : c.body;
    const version = { t: c.updatedAt, s: c.syncId, q: seq, o: state.ctx.clientId, ...(c.claimedAt === undefined ? {} : { c: c.claimedAt }) };
    const isState = c.type === 'entity_state' && !c.deleted;
    const attrs = isState ? encodeAttrMeta(metaOfWrite(objectOf(body.state), version)) : null;
    this.put(state, c, {
      data: keepData ? stored.data : c.bodyText,
      body,
      updated_at: c.updatedAt,
      sync_id: c.syncId,
      deleted: c.deleted ? 1 : 0,
      seq,
      created_seq: createdSeq,
      origin_client: state.ctx.clientId,
      attrs,
      foreign_seq: 0,
      claimed_at: c.claimedAt ?? null,
    }, stored);
    return seq;
  }

  /** Stores a row (digest columns computed here) and moves the home's digest. */
  private put(state: PushState, c: Candidate, row: Omit<StoredRow, 'bucket' | 'hash'> & { body: Record<string, unknown> }, stored: StoredRow | undefined): void {
    const { body, ...columns } = row;
    const digest = rowDigest(c.type, c.entityId, body, row.deleted === 1);
    this.stmts.putEntity.run(
      state.ctx.homeId,
      c.type,
      c.entityId,
      row.data,
      row.updated_at,
      row.sync_id,
      row.deleted,
      row.seq,
      row.created_seq,
      ENTITY_PRIORITY[c.type],
      row.origin_client,
      row.attrs,
      row.foreign_seq,
      row.claimed_at,
      digest.bucket,
      digest.hash,
    );
    state.digest.change(state.ctx.homeId, digest.bucket, stored?.hash, digest.hash);
    state.entities.set(entityKey(c.type, c.entityId), { ...columns, ...digest });
  }

  /** How many times the change `clientSyncId` of `clientId` was written (0 when never seen). */
  applicationCount(clientId: string, clientSyncId: string): number {
    return (this.stmts.applications.get(clientId, clientSyncId) as number | undefined) ?? 0;
  }
}

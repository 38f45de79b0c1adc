/**
 * Deciding a sync_push, as a pure function both stores share (seed §3, §4, §Conflict Resolution; docs/protocol.md
 * §Conflicts, §Idempotency, §Per-change rejection). Given the stored results of the pushed client_sync_ids and the
 * stored versions of the pushed entities, it decides every change in order and says what to write: the final
 * version of each written entity, one result per new client_sync_id, one row per conflict. The store reads the
 * inputs and writes the plan in the push's one transaction; `nextSeq` hands out commit sequences in that
 * transaction.
 *
 * Extensions (docs/protocol.md): an entity_state pushed over a live one is merged attribute by attribute
 * (state-merge.ts); `updated_at` is clamped to the receive time plus a tolerance for ordering (validate.ts, with the
 * store's `ctx.clampUs`); every losing and every overwritten version becomes a sync history record; every write moves
 * the home's convergence digest (the plan's per-bucket changes, applied by the store in the same transaction).
 */
import { z } from 'zod';
import {
  ConflictSchema,
  DataSchema,
  BucketSums,
  ENTITY_PRIORITY,
  TimestampSchema,
  bucketOf,
  entityHashHex,
  normaliseEntityType,
  resolveLastWriteWins,
  type ApplyStatus,
  type EntityType,
  type Micros,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
} from '../../protocol/index.js';
import {
  appliedEntry,
  candidateColumns,
  conflictEntry,
  versionRecord,
  type HistoryWrite,
  type VersionColumns,
} from './plan-entries.js';
import { planStateMerge } from './state-merge.js';
import { validateChange, type Candidate, type PushContext, type PushOutcome } from './validate.js';

export type { HistoryWrite } from './plan-entries.js';

/** The version the server holds for an entity (tombstones included), with the extensions' columns. */
export interface StoredVersion extends VersionColumns {
  readonly seq: Micros;
  readonly created_seq: Micros;
  /** entity_state: per-attribute versions (protocol/attributes.ts); null for other types and older rows. */
  readonly attrs: string | null;
  /** Highest seq of an attribute not written by origin_client (a delta to that client still carries the row). */
  readonly foreign_seq: Micros;
  /** Entity hash of the digest (16 hex digits); null for a tombstone. */
  readonly hash: string | null;
}

/** A stored push result as read back (the applied entry is rebuilt from it). */
export interface ResultRecord {
  readonly client_sync_id: string;
  readonly status: ApplyStatus;
  readonly server_sync_id: string | null;
  readonly entity_type: string;
  readonly entity_id: string;
  /** JSON {error?, conflict?, clamped_to?}, only when there is one; written by `planPush`. */
  readonly detail: string | null;
}

export interface ResultWrite extends ResultRecord {
  /** 1 when this change was written, else 0 (a change must be written at most once: tests read the sum). */
  readonly applications: number;
}

export interface EntityWrite extends StoredVersion {
  readonly entity_type: EntityType;
  readonly entity_id: string;
  readonly priority: number;
  /** Digest bucket (protocol/digest.ts). */
  readonly bucket: number;
}

export interface PushPlan {
  readonly applied: WireApplied[];
  readonly conflicts: WireConflict[];
  /** The final version of each entity the push wrote (one per entity, the last write wins inside a push). */
  readonly entities: EntityWrite[];
  readonly results: ResultWrite[];
  readonly conflictRows: { readonly seq: Micros; readonly entry: string }[];
  /** Versions that lost or were overwritten (docs/protocol.md §Sync history). */
  readonly history: HistoryWrite[];
  /** Per digest bucket, what to add (mod 2^64) to the home's sum; 0n: unchanged. */
  readonly digest: bigint[];
  /** Changes whose updated_at the clamp moved. */
  readonly clamped: number;
  /** True when at least one change was written (the home's live waits must be woken). */
  readonly wrote: boolean;
}

export interface PlanInput {
  /** With `clampUs` set by the store when the clamp is on (receive time + tolerance). */
  readonly ctx: PushContext;
  readonly changes: readonly WirePushChange[];
  /** Stored outcomes of the pushed client_sync_ids this client pushed before (`outcomeFromRecord`). */
  readonly prior: ReadonlyMap<string, PushOutcome>;
  /** Stored versions by `entityKey(type, id)`. */
  readonly stored: ReadonlyMap<string, StoredVersion>;
  /** A fresh commit sequence, increasing, in the push's transaction. */
  readonly nextSeq: () => Micros;
  /** False for a change whose result cannot be stored (it is answered, not remembered). Default: all. */
  readonly recordable?: (change: WirePushChange) => boolean;
}

/** What a stored result carries besides its columns; checked when read back (it comes from the database). */
const DetailSchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  conflict: ConflictSchema.optional(),
  clamped_to: TimestampSchema.optional(),
});
type Detail = z.infer<typeof DetailSchema>;

export function entityKey(type: string, id: string): string {
  return `${type}\u0000${id}`;
}

/** The keys a push reads stored versions for: its changes of a known type. */
export function pushedKeys(changes: readonly WirePushChange[], recordable?: (c: WirePushChange) => boolean): [EntityType, string][] {
  const keys: [EntityType, string][] = [];
  for (const c of changes) {
    const type = normaliseEntityType(c.entity_type);
    if (type !== undefined && (recordable === undefined || recordable(c))) keys.push([type, c.entity_id]);
  }
  return keys;
}

/** Rebuilds a stored result; `detail` was written by `planPush` (JSON {error?, conflict?, clamped_to?}). */
export function outcomeFromRecord(row: ResultRecord): PushOutcome {
  const detail: Detail = row.detail === null ? {} : DetailSchema.parse(JSON.parse(row.detail));
  const applied: WireApplied = {
    client_sync_id: row.client_sync_id,
    server_sync_id: row.server_sync_id,
    status: row.status,
    entity_type: row.entity_type,
    entity_id: row.entity_id,
  };
  if (detail.error) applied.error = detail.error;
  if (detail.clamped_to) applied.clamped_to = detail.clamped_to;
  return detail.conflict ? { applied, conflict: detail.conflict } : { applied };
}

/** The digest columns of a row: its bucket and entity hash (null for a tombstone). */
export function rowDigest(type: string, id: string, data: unknown, deleted: boolean): { bucket: number; hash: string | null } {
  return { bucket: bucketOf(type, id), hash: deleted ? null : entityHashHex(type, id, data) };
}

/** A row to write, before its digest columns are computed. */
type RowDraft = Omit<StoredVersion, 'hash'> & { readonly body: Record<string, unknown> };

/** The working state of one push: what it decided and the current version of each touched entity. */
class Planner {
  readonly current: Map<string, StoredVersion>;
  readonly written = new Map<string, EntityWrite>();
  readonly conflictRows: { seq: Micros; entry: string }[] = [];
  readonly history: HistoryWrite[] = [];
  readonly digest = new BucketSums();

  constructor(private readonly input: PlanInput) {
    this.current = new Map(input.stored);
  }

  /** Last-write-wins against the current version (seed §Conflict Resolution); attribute by attribute for states. */
  decide(c: Candidate): { outcome: PushOutcome; wrote: boolean } {
    const { ctx } = this.input;
    const stored = this.current.get(entityKey(c.type, c.entityId));
    if (stored === undefined) {
      this.write(c, undefined);
      return { outcome: { applied: appliedEntry(c, 'applied', c.syncId) }, wrote: true };
    }
    if (
      stored.sync_id === c.syncId &&
      stored.updated_at === c.updatedAt &&
      stored.deleted === c.deleted &&
      (c.deleted || stored.data === c.bodyText)
    ) {
      // Identical resubmission of the stored version: applied, nothing written, no new seq.
      return { outcome: { applied: appliedEntry(c, 'applied', stored.sync_id) }, wrote: false };
    }
    if (c.type === 'entity_state' && !c.deleted && !stored.deleted) return this.decideAttributes(c, stored);
    const decision = resolveLastWriteWins(
      { updatedAt: stored.updated_at, syncId: stored.sync_id, deleted: stored.deleted },
      { updatedAt: c.updatedAt, syncId: c.syncId, deleted: c.deleted },
    );
    const clientWins = decision.winner === 'client';
    const conflict = !clientWins || stored.origin_client !== ctx.clientId ? conflictEntry(c, stored, decision.reason, clientWins) : undefined;
    if (clientWins) this.history.push(versionRecord(c, stored, 'overwritten', decision.reason, ctx.clientId));
    else this.history.push(versionRecord(c, candidateColumns(c, ctx), 'lost', decision.reason, stored.origin_client));
    const seq = clientWins ? this.write(c, stored) : this.input.nextSeq();
    if (conflict) this.conflictRows.push({ seq, entry: JSON.stringify(conflict) });
    const applied = clientWins ? appliedEntry(c, 'applied', c.syncId) : appliedEntry(c, 'conflict', stored.sync_id);
    return { outcome: conflict ? { applied, conflict } : { applied }, wrote: clientWins };
  }

  /** An entity_state over a live one: merged attribute by attribute (state-merge.ts). */
  private decideAttributes(c: Candidate, stored: StoredVersion): { outcome: PushOutcome; wrote: boolean } {
    const { ctx } = this.input;
    const seq = this.input.nextSeq();
    const plan = planStateMerge(stored, c, ctx, seq);
    this.history.push(...plan.history);
    if (plan.row !== undefined) {
      const { row } = plan;
      this.put(c, {
        body: row.body,
        data: JSON.stringify(row.body),
        updated_at: row.updatedAt,
        sync_id: row.syncId,
        deleted: false,
        seq,
        created_seq: stored.created_seq,
        origin_client: ctx.clientId,
        attrs: row.attrs,
        foreign_seq: row.foreignSeq,
        claimed_at: row.claimedAt,
      }, stored);
    }
    const conflict = plan.attributes.length > 0 ? { ...conflictEntry(c, stored, plan.reason, plan.clientWon), attributes: plan.attributes } : undefined;
    if (conflict) this.conflictRows.push({ seq, entry: JSON.stringify(conflict) });
    if (!plan.clientWon && plan.attributes.length === 0) return { outcome: { applied: appliedEntry(c, 'applied', stored.sync_id) }, wrote: false };
    const applied = plan.clientWon ? appliedEntry(c, 'applied', c.syncId) : appliedEntry(c, 'conflict', stored.sync_id);
    return { outcome: conflict ? { applied, conflict } : { applied }, wrote: plan.clientWon };
  }

  /** Writes the candidate whole as the entity's current version; returns its seq. */
  private write(c: Candidate, stored: StoredVersion | undefined): Micros {
    const { ctx } = this.input;
    const seq = this.input.nextSeq();
    const keepData = c.deleted && stored !== undefined && Object.keys(c.body).length === 0;
    const body = keepData ? DataSchema.parse(JSON.parse(stored.data)) : c.body;
    this.put(c, {
      body,
      data: keepData ? stored.data : c.bodyText,
      updated_at: c.updatedAt,
      sync_id: c.syncId,
      deleted: c.deleted,
      seq,
      created_seq: stored !== undefined && !stored.deleted ? stored.created_seq : seq,
      origin_client: ctx.clientId,
      // A whole write: every attribute has the row's own version, which is what no metadata means (state-merge.ts
      // falls back to the row's version), so none is stored — a few hundred bytes less per state row.
      attrs: null,
      foreign_seq: 0,
      claimed_at: c.claimedAt ?? null,
    }, stored);
    return seq;
  }

  /** Records a row to write (its digest columns computed here) and moves the home's digest. */
  private put(c: Candidate, draft: RowDraft, stored: StoredVersion | undefined): void {
    const { body, ...columns } = draft;
    const digest = rowDigest(c.type, c.entityId, body, draft.deleted);
    const before = stored?.hash ?? null;
    if (before !== digest.hash) {
      if (before !== null) this.digest.addHex(digest.bucket, before, -1);
      if (digest.hash !== null) this.digest.addHex(digest.bucket, digest.hash);
    }
    const row: EntityWrite = {
      entity_type: c.type,
      entity_id: c.entityId,
      priority: ENTITY_PRIORITY[c.type],
      bucket: digest.bucket,
      hash: digest.hash,
      data: columns.data,
      updated_at: columns.updated_at,
      claimed_at: columns.claimed_at,
      sync_id: columns.sync_id,
      deleted: columns.deleted,
      origin_client: columns.origin_client,
      seq: columns.seq,
      created_seq: columns.created_seq,
      attrs: columns.attrs,
      foreign_seq: columns.foreign_seq,
    };
    const key = entityKey(c.type, c.entityId);
    this.current.set(key, row);
    this.written.set(key, row);
  }
}

/** Decides every change of a push in order; see the module comment. */
export function planPush(input: PlanInput): PushPlan {
  const planner = new Planner(input);
  const outcomes = new Map<string, PushOutcome>();
  const results: ResultWrite[] = [];
  const applied: WireApplied[] = [];
  const conflicts: WireConflict[] = [];
  let wroteAny = false;
  let clamped = 0;
  for (const change of input.changes) {
    let outcome = outcomes.get(change.client_sync_id) ?? input.prior.get(change.client_sync_id);
    if (outcome === undefined) {
      const candidate = validateChange(change, input.ctx);
      const decided = 'type' in candidate ? planner.decide(candidate) : { outcome: candidate, wrote: false };
      if ('type' in candidate && candidate.claimedAt !== undefined) clamped += 1;
      outcome = decided.outcome;
      wroteAny ||= decided.wrote;
      if (input.recordable === undefined || input.recordable(change)) results.push(resultWrite(outcome, decided.wrote));
      outcomes.set(change.client_sync_id, outcome); // a repeat inside this push gets the same result
    }
    applied.push(outcome.applied);
    if (outcome.conflict) conflicts.push(outcome.conflict);
  }
  return {
    applied,
    conflicts,
    entities: [...planner.written.values()],
    results,
    conflictRows: planner.conflictRows,
    history: planner.history,
    digest: planner.digest.toBigInts(),
    clamped,
    wrote: wroteAny,
  };
}

function resultWrite(outcome: PushOutcome, wrote: boolean): ResultWrite {
  const a = outcome.applied;
  const hasDetail = a.error !== undefined || outcome.conflict !== undefined || a.clamped_to !== undefined;
  const detail: Detail | null = hasDetail ? { error: a.error, conflict: outcome.conflict, clamped_to: a.clamped_to } : null;
  return {
    client_sync_id: a.client_sync_id,
    status: a.status,
    server_sync_id: a.server_sync_id,
    entity_type: a.entity_type,
    entity_id: a.entity_id,
    detail: detail === null ? null : JSON.stringify(detail),
    applications: wrote ? 1 : 0,
  };
}

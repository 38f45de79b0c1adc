/**
 * Deciding a sync_push, as a pure function both stores share (seed §3, §4, §Conflict Resolution; docs/protocol.md
 * §Conflicts, §Idempotency, §Per-change rejection). Given the stored results of the pushed client_sync_ids and the
 * stored versions of the pushed entities, it decides every change in order and says what to write: the final
 * version of each written entity, one result per new client_sync_id, one row per conflict. The store reads the
 * inputs and writes the plan in the push's one transaction; `nextSeq` hands out commit sequences in that
 * transaction.
 */
import { z } from 'zod';
import {
  ConflictSchema,
  DataSchema,
  ENTITY_PRIORITY,
  classifyConflict,
  formatTimestamp,
  normaliseEntityType,
  resolveLastWriteWins,
  type ApplyStatus,
  type EntityType,
  type Micros,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
  type WireVersion,
} from '../../protocol/index.js';
import { validateChange, type Candidate, type PushContext, type PushOutcome } from './validate.js';

/** The version the server holds for an entity (tombstones included). */
export interface StoredVersion {
  readonly data: string;
  readonly updated_at: Micros;
  readonly sync_id: string;
  readonly deleted: boolean;
  readonly created_seq: Micros;
  readonly origin_client: string | null;
}

/** A stored push result as read back (the applied entry is rebuilt from it). */
export interface ResultRecord {
  readonly client_sync_id: string;
  readonly status: ApplyStatus;
  readonly server_sync_id: string | null;
  readonly entity_type: string;
  readonly entity_id: string;
  /** JSON {error?, conflict?}, only when there is one; written by `planPush`. */
  readonly detail: string | null;
}

export interface ResultWrite extends ResultRecord {
  /** 1 when this change was written, else 0 (a change must be written at most once: tests read the sum). */
  readonly applications: number;
}

export interface EntityWrite extends StoredVersion {
  readonly entity_type: EntityType;
  readonly entity_id: string;
  readonly seq: Micros;
  readonly priority: number;
}

export interface PushPlan {
  readonly applied: WireApplied[];
  readonly conflicts: WireConflict[];
  /** The final version of each entity the push wrote (one per entity, the last write wins inside a push). */
  readonly entities: EntityWrite[];
  readonly results: ResultWrite[];
  readonly conflictRows: { readonly seq: Micros; readonly entry: string }[];
  /** True when at least one change was written (the home's live waits must be woken). */
  readonly wrote: boolean;
}

export interface PlanInput {
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

/** Rebuilds a stored result; `detail` was written by `planPush` (JSON {error?, conflict?}). */
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
  return detail.conflict ? { applied, conflict: detail.conflict } : { applied };
}

function storedWire(row: StoredVersion, entityId: string): WireVersion {
  const ts = formatTimestamp(row.updated_at);
  const data = { id: entityId, sync_id: row.sync_id, updated_at: ts, ...DataSchema.parse(JSON.parse(row.data)) };
  return { operation: row.deleted ? 'delete' : 'update', data, updated_at: ts, sync_id: row.sync_id, deleted: row.deleted };
}

function candidateWire(c: Candidate): WireVersion {
  const ts = formatTimestamp(c.updatedAt);
  return {
    operation: c.op,
    data: { id: c.entityId, sync_id: c.syncId, updated_at: ts, ...c.body },
    updated_at: ts,
    sync_id: c.syncId,
    deleted: c.deleted,
  };
}

function appliedEntry(c: Candidate, status: 'applied' | 'conflict', serverSyncId: string): WireApplied {
  return { client_sync_id: c.clientSyncId, server_sync_id: serverSyncId, status, entity_type: c.type, entity_id: c.entityId };
}

/** Decides every change of a push in order; see the module comment. */
export function planPush(input: PlanInput): PushPlan {
  const { ctx } = input;
  const outcomes = new Map<string, PushOutcome>();
  const current = new Map(input.stored);
  const written = new Map<string, EntityWrite>();
  const results: ResultWrite[] = [];
  const conflictRows: { seq: Micros; entry: string }[] = [];
  const applied: WireApplied[] = [];
  const conflicts: WireConflict[] = [];

  /** Last-write-wins against the current version (seed §Conflict Resolution). */
  const decide = (c: Candidate): { outcome: PushOutcome; wrote: boolean } => {
    const key = entityKey(c.type, c.entityId);
    const stored = current.get(key);
    const write = (): void => {
      const seq = input.nextSeq();
      const keepData = c.deleted && stored !== undefined && Object.keys(c.body).length === 0;
      const row: EntityWrite = {
        entity_type: c.type,
        entity_id: c.entityId,
        data: keepData ? stored.data : c.bodyText,
        updated_at: c.updatedAt,
        sync_id: c.syncId,
        deleted: c.deleted,
        seq,
        created_seq: stored !== undefined && !stored.deleted ? stored.created_seq : seq,
        priority: ENTITY_PRIORITY[c.type],
        origin_client: ctx.clientId,
      };
      current.set(key, row);
      written.set(key, row);
    };
    if (stored === undefined) {
      write();
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
    const decision = resolveLastWriteWins(
      { updatedAt: stored.updated_at, syncId: stored.sync_id, deleted: stored.deleted },
      { updatedAt: c.updatedAt, syncId: c.syncId, deleted: c.deleted },
    );
    const clientWins = decision.winner === 'client';
    const conflict: WireConflict | undefined =
      !clientWins || stored.origin_client !== ctx.clientId
        ? {
            entity_type: c.type,
            entity_id: c.entityId,
            type: classifyConflict({ deleted: stored.deleted }, { deleted: c.deleted, operation: c.op }),
            reason: decision.reason,
            server_version: storedWire(stored, c.entityId),
            client_version: candidateWire(c),
            resolution: clientWins ? 'client_wins' : 'server_wins',
            client_sync_id: c.clientSyncId,
          }
        : undefined;
    let seq: Micros;
    if (clientWins) {
      write();
      seq = (written.get(key) as EntityWrite).seq;
    } else {
      seq = input.nextSeq();
    }
    if (conflict) conflictRows.push({ seq, entry: JSON.stringify(conflict) });
    const entry = clientWins ? appliedEntry(c, 'applied', c.syncId) : appliedEntry(c, 'conflict', stored.sync_id);
    return { outcome: conflict ? { applied: entry, conflict } : { applied: entry }, wrote: clientWins };
  };

  let wroteAny = false;
  for (const change of input.changes) {
    let outcome = outcomes.get(change.client_sync_id) ?? input.prior.get(change.client_sync_id);
    if (outcome === undefined) {
      const candidate = validateChange(change, ctx);
      const decided = 'type' in candidate ? decide(candidate) : { outcome: candidate, wrote: false };
      outcome = decided.outcome;
      wroteAny ||= decided.wrote;
      if (input.recordable === undefined || input.recordable(change)) {
        const a = outcome.applied;
        const detail: Detail | null = a.error || outcome.conflict ? { error: a.error, conflict: outcome.conflict } : null;
        results.push({
          client_sync_id: a.client_sync_id,
          status: a.status,
          server_sync_id: a.server_sync_id,
          entity_type: a.entity_type,
          entity_id: a.entity_id,
          detail: detail === null ? null : JSON.stringify(detail),
          applications: decided.wrote ? 1 : 0,
        });
      }
      outcomes.set(change.client_sync_id, outcome); // a repeat inside this push gets the same result
    }
    applied.push(outcome.applied);
    if (outcome.conflict) conflicts.push(outcome.conflict);
  }
  return { applied, conflicts, entities: [...written.values()], results, conflictRows, wrote: wroteAny };
}

/**
 * The wire entries and history records a push decision produces (plan.ts): a stored version and a candidate as the
 * seed spells a version, the `applied` entry, the conflict entry (with the clamp flagged, docs/protocol.md §Clamp) and
 * the history record of a whole version (docs/protocol.md §Sync history). Pure functions.
 */
import {
  DataSchema,
  classifyConflict,
  formatTimestamp,
  type WireApplied,
  type WireConflict,
  type WireVersion,
} from '../../protocol/index.js';
import type { HistoryRecord } from './history.js';
import type { Candidate, PushContext } from './validate.js';

/** A version's columns as the history and the conflict entries read them. */
export interface VersionColumns {
  readonly data: string;
  readonly updated_at: number;
  readonly claimed_at: number | null;
  readonly sync_id: string;
  readonly deleted: boolean;
  readonly origin_client: string | null;
}

/** A history record without its home (the store adds it). */
export type HistoryWrite = Omit<HistoryRecord, 'homeId'>;

export function storedWire(row: VersionColumns, entityId: string): WireVersion {
  const ts = formatTimestamp(row.updated_at);
  const data = { id: entityId, sync_id: row.sync_id, updated_at: ts, ...DataSchema.parse(JSON.parse(row.data)) };
  return { operation: row.deleted ? 'delete' : 'update', data, updated_at: ts, sync_id: row.sync_id, deleted: row.deleted };
}

/** The candidate as the client sent it: its claimed time, not the clamped one. */
export function candidateWire(c: Candidate): WireVersion {
  const ts = formatTimestamp(c.claimedAt ?? c.updatedAt);
  return {
    operation: c.op,
    data: { id: c.entityId, sync_id: c.syncId, updated_at: ts, ...c.body },
    updated_at: ts,
    sync_id: c.syncId,
    deleted: c.deleted,
  };
}

export function appliedEntry(c: Candidate, status: 'applied' | 'conflict', serverSyncId: string): WireApplied {
  const entry: WireApplied = { client_sync_id: c.clientSyncId, server_sync_id: serverSyncId, status, entity_type: c.type, entity_id: c.entityId };
  if (c.claimedAt !== undefined) entry.clamped_to = formatTimestamp(c.updatedAt);
  return entry;
}

export function conflictEntry(c: Candidate, stored: VersionColumns, reason: string, clientWins: boolean): WireConflict {
  const conflict: WireConflict = {
    entity_type: c.type,
    entity_id: c.entityId,
    type: classifyConflict({ deleted: stored.deleted }, { deleted: c.deleted, operation: c.op }),
    reason,
    server_version: storedWire(stored, c.entityId),
    client_version: candidateWire(c),
    resolution: clientWins ? 'client_wins' : 'server_wins',
    client_sync_id: c.clientSyncId,
  };
  if (c.claimedAt !== undefined) conflict.clamped_to = formatTimestamp(c.updatedAt);
  return conflict;
}

/** The history record of a whole version (entity-level decisions). */
export function versionRecord(
  c: Candidate,
  row: VersionColumns,
  why: 'lost' | 'overwritten',
  reason: string,
  decidedBy: string | null,
): HistoryWrite {
  return {
    entityType: c.type,
    entityId: c.entityId,
    why,
    reason,
    operation: row.deleted ? 'delete' : 'update',
    data: DataSchema.parse(JSON.parse(row.data)),
    updatedAt: row.updated_at,
    claimedAt: row.claimed_at,
    syncId: row.sync_id,
    writtenBy: row.origin_client,
    decidedBy,
  };
}

/** A candidate in the stored columns' shape (its history record when it loses). */
export function candidateColumns(c: Candidate, ctx: PushContext): VersionColumns {
  return { data: c.bodyText, updated_at: c.updatedAt, claimed_at: c.claimedAt ?? null, sync_id: c.syncId, deleted: c.deleted, origin_client: ctx.clientId };
}

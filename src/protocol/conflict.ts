/**
 * Last-write-wins, exactly as the seed §Conflict Resolution states it, as a pure function:
 *   1. Timestamp comparison: the version with the later `updated_at` wins.
 *   2. Tie breaking: if the timestamps are within 1 second, the higher `sync_id` wins.
 *   3. Delete priority: within that window a delete beats an update (docs/protocol.md §Conflicts).
 *   4. Client notification: every conflict is reported (the caller builds the report from the `Decision`).
 *
 * "Within 1 second" is read as |Δ| < 1 s (a difference of exactly one second is decided by timestamp). The window
 * rule is not transitive (A≈B and B≈C do not give A≈C), which docs/protocol.md §Conflicts discusses.
 */
import type { Micros } from './timestamps.js';

export const TIE_WINDOW_US: Micros = 1_000_000;

export interface Version {
  readonly updatedAt: Micros;
  readonly syncId: string;
  readonly deleted: boolean;
}

export type ConflictType = 'UPDATE_UPDATE' | 'UPDATE_DELETE' | 'CREATE_CREATE';

export type DecisionReason =
  | 'newer_on_server'
  | 'newer_on_client'
  | 'delete_wins'
  | 'higher_sync_id_on_server'
  | 'higher_sync_id_on_client'
  | 'identical_version';

export interface Decision {
  readonly winner: 'server' | 'client';
  readonly reason: DecisionReason;
}

/** Decides between the version the server holds and an incoming one (seed §Last-Write-Wins Rules). */
export function resolveLastWriteWins(server: Version, client: Version, windowUs: Micros = TIE_WINDOW_US): Decision {
  const delta = client.updatedAt - server.updatedAt;
  if (Math.abs(delta) >= windowUs) {
    return delta > 0 ? { winner: 'client', reason: 'newer_on_client' } : { winner: 'server', reason: 'newer_on_server' };
  }
  if (server.deleted !== client.deleted) {
    return server.deleted ? { winner: 'server', reason: 'delete_wins' } : { winner: 'client', reason: 'delete_wins' };
  }
  if (client.syncId === server.syncId) return { winner: 'server', reason: 'identical_version' };
  return client.syncId > server.syncId
    ? { winner: 'client', reason: 'higher_sync_id_on_client' }
    : { winner: 'server', reason: 'higher_sync_id_on_server' };
}

/** Names the kind of conflict (seed §Conflict Types) between what the server holds and what arrives. */
export function classifyConflict(server: { deleted: boolean }, client: { deleted: boolean; operation: string }): ConflictType {
  if (server.deleted || client.deleted) return 'UPDATE_DELETE';
  if (client.operation === 'create') return 'CREATE_CREATE';
  return 'UPDATE_UPDATE';
}

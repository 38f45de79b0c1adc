/**
 * Applying a sync_result (seed §Sync Flow step 4) — the write program the push phase runs in the store's writer,
 * relaxed: if a power cut loses it, the rows are still in the outbox, are pushed again with the same
 * client_sync_ids, and the server answers with its stored result (docs/protocol.md §Idempotency). Rules:
 *
 * - only what was decided is cleared, by client_sync_id, so a newer local version that arrived while the older one
 *   was in flight survives;
 * - applied: the server's id is recorded if the entity still holds that version;
 * - conflict, server wins: unless a newer local version is pending, the local entity takes the server's version and
 *   the device gets a downlink command for what differs;
 * - rejected: recorded in the conflict log (the push phase also logs it);
 * - every conflict entry of the result is recorded once.
 *
 * The decisions arrive already matched and checked by the push phase (push.ts); this module loads no zod.
 */
import type { EntityType } from '../protocol/entity-types.js';
import type { StoreTx } from '../store/tx.js';
import type { ConflictRecord, DeviceCommand } from '../store/types.js';
import { defineWriteProgram } from '../store/writer.js';
import { downlinkFor } from './downlink-rule.js';

/** The version of a pushed change (the outbox row it came from). */
export interface PushedVersion {
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly clientSyncId: string;
  readonly updatedAt: number;
}

/** The server's winning version of a conflict, checked and split from its envelope fields. */
export interface ServerWinner {
  readonly data: Record<string, unknown>;
  readonly updatedAt: number;
  readonly syncId: string;
  readonly deleted: boolean;
}

export type PushDecision =
  | { readonly status: 'applied'; readonly version: PushedVersion; readonly serverSyncId: string | null }
  | { readonly status: 'conflict'; readonly version: PushedVersion; readonly winner: ServerWinner | undefined }
  | { readonly status: 'rejected'; readonly version: PushedVersion; readonly record: ConflictRecord };

export interface PushResultArgs {
  readonly decisions: readonly PushDecision[];
  readonly serverConflicts: readonly ConflictRecord[];
  /** Local epoch ms (conflict records). */
  readonly nowMs: number;
}

function takeServerWinner(tx: StoreTx, version: PushedVersion, winner: ServerWinner | undefined): DeviceCommand | undefined {
  if (winner === undefined) return undefined;
  if (tx.pendingClientSyncId(version.entityType, version.entityId) !== undefined) return undefined; // a newer local version
  const local = tx.entity(version.entityType, version.entityId);
  const data = winner.deleted && Object.keys(winner.data).length === 0 ? (local?.data ?? {}) : winner.data;
  tx.upsertEntity({ entityType: version.entityType, entityId: version.entityId, data, updatedAt: winner.updatedAt, syncId: winner.syncId, deleted: winner.deleted });
  return winner.deleted ? undefined : downlinkFor(local, data);
}

export function applyPushResult(tx: StoreTx, args: PushResultArgs): { commands: DeviceCommand[] } {
  const commands: DeviceCommand[] = [];
  for (const decision of args.decisions) {
    const { version } = decision;
    tx.clearPending(version.entityType, version.entityId, version.clientSyncId);
    if (decision.status === 'applied') {
      if (decision.serverSyncId !== null) tx.setSyncIdIfUnchanged(version.entityType, version.entityId, version.updatedAt, decision.serverSyncId);
    } else if (decision.status === 'conflict') {
      const command = takeServerWinner(tx, version, decision.winner);
      if (command !== undefined) commands.push(command);
    } else {
      tx.recordConflict(decision.record, args.nowMs);
    }
  }
  for (const conflict of args.serverConflicts) tx.recordConflictOnce(conflict, args.nowMs);
  return { commands };
}

export const APPLY_PUSH_RESULT = defineWriteProgram(import.meta.url, 'sync.applyPushResult', applyPushResult);

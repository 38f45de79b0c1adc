/**
 * Applying a pulled sync_delta page (seed §Sync Flow step 2) — the write program the sync client runs in the store's
 * writer, one transaction per page, relaxed (a page and its watermark lost to a power cut are pulled again from the
 * older watermark and applied again idempotently). Rules:
 *
 * - an echo of our own version (same sync_id) is skipped;
 * - an unpushed local change is never overwritten: the pulled version is recorded as a conflict and the push that
 *   follows lets the server arbitrate (design.md §Conflicts);
 * - a changed device state yields a downlink command (design.md §Downlink); nothing is written to the outbox, so
 *   nothing is echoed upstream. Where the entity has an unpushed local change, nothing is published here: the push
 *   result decides (push-apply.ts publishes the server's version if it won), so a losing value never reaches the
 *   device (design.md §Downlink, revised);
 * - a pulled version of an entity that a push result already decided after this page's watermark is skipped (a push
 *   on another connection while a live wait is held: the page was computed before the push committed, so what the
 *   push result said is newer);
 * - the watermark (last_sync, the server's time — design.md §Watermark) is saved with the LAST page only, so an
 *   interrupted sync is redone whole;
 * - a full resync (from last_sync null) reconciles on its last page: local entities the server knew (sync_id set),
 *   did not send, and that have nothing pending are removed (design.md §Deletes).
 *
 * The changes arrive already checked and normalised by the pull phase (pull.ts); this module runs on the writer's
 * thread and loads no zod.
 */
import type { EntityType } from '../protocol/entity-types.js';
import type { StoreTx } from '../store/tx.js';
import type { ConflictRecord, DeviceCommand } from '../store/types.js';
import { defineWriteProgram } from '../store/writer.js';
import { downlinkFor } from './downlink-rule.js';

/** A pulled change, checked (entity type, envelope fields, timestamp, data schema) and normalised. */
export interface RemoteChange {
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly operation: string;
  /** data without id / sync_id / updated_at */
  readonly body: Record<string, unknown>;
  readonly updatedAt: number;
  /** The wire spelling of updated_at, kept for the conflict record. */
  readonly updatedAtText: string;
  readonly syncId: string;
  readonly deleted: boolean;
}

export interface DeltaPage {
  readonly changes: readonly RemoteChange[];
  /** The delta's conflict entries (against this client's pushes); stored once each. */
  readonly conflicts: readonly ConflictRecord[];
  /** The page's server_time; saved as the watermark with the last page. */
  readonly serverTime: string;
  readonly last: boolean;
  /** On the last page of a full resync: every `type/id` the server sent on any page. */
  readonly reconcileSeen?: readonly string[];
  /** Local epoch ms (conflict records). */
  readonly nowMs: number;
  /**
   * Keys (`type/id`, remoteKey) of entities whose version a push result decided at a server_time later than this
   * page's: the page carries nothing newer for them (SyncClient's push settlements).
   */
  readonly settledByPush?: readonly string[];
}

export interface DeltaOutcome {
  readonly applied: number;
  readonly echoes: number;
  /** Pulled versions older than a push result already applied (settledByPush). */
  readonly superseded: number;
  /** Pulled changes that met an unpushed local change (recorded, local kept). */
  readonly conflicts: number;
  /** Local entities removed by a full resync's reconciliation. */
  readonly removed: number;
  readonly commands: DeviceCommand[];
}

export function remoteKey(entityType: string, entityId: string): string {
  return `${entityType}/${entityId}`;
}

interface Tally {
  applied: number;
  echoes: number;
  superseded: number;
  conflicts: number;
  commands: DeviceCommand[];
}

function applyChange(tx: StoreTx, change: RemoteChange, page: DeltaPage, settled: ReadonlySet<string>, tally: Tally): void {
  const local = tx.entity(change.entityType, change.entityId);
  if (local !== undefined && local.syncId === change.syncId) {
    tally.echoes += 1; // our own version coming back
    return;
  }
  if (settled.has(remoteKey(change.entityType, change.entityId))) {
    tally.superseded += 1;
    return;
  }
  const nowMs = page.nowMs;
  const pending = tx.pendingClientSyncId(change.entityType, change.entityId);
  if (pending !== undefined) {
    tally.conflicts += 1;
    tx.recordConflict(
      {
        entityType: change.entityType,
        entityId: change.entityId,
        type: change.deleted || local?.deleted === true ? 'UPDATE_DELETE' : 'UPDATE_UPDATE',
        reason: 'pending_local_change',
        resolution: 'server_arbitrates_on_push',
        serverVersion: { operation: change.operation, data: change.body, updated_at: change.updatedAtText, sync_id: change.syncId, deleted: change.deleted },
        clientVersion: local === undefined ? null : { data: local.data, updated_at: local.updatedAt, client_sync_id: pending, deleted: local.deleted },
      },
      nowMs,
    );
    return; // design.md §Downlink (revised): the device hears of it only if the push result says the server's won
  }
  const command = change.deleted ? undefined : downlinkFor(local, change.body);
  if (command !== undefined) tally.commands.push(command); // design.md §Downlink: at once
  tx.upsertEntity({
    entityType: change.entityType,
    entityId: change.entityId,
    data: change.deleted && Object.keys(change.body).length === 0 ? (local?.data ?? {}) : change.body,
    updatedAt: change.updatedAt,
    syncId: change.syncId,
    deleted: change.deleted,
  });
  tally.applied += 1;
}

/** Full resync: drops local entities the server did not send, that it knew, and that have nothing pending. */
function reconcile(tx: StoreTx, seen: ReadonlySet<string>): number {
  let removed = 0;
  for (const { entityType, entityId } of tx.syncedWithoutPending()) {
    if (seen.has(remoteKey(entityType, entityId))) continue;
    tx.deleteEntity(entityType, entityId);
    removed += 1;
  }
  return removed;
}

export function applyDeltaPage(tx: StoreTx, page: DeltaPage): DeltaOutcome {
  const tally = { applied: 0, echoes: 0, superseded: 0, conflicts: 0, removed: 0, commands: [] as DeviceCommand[] };
  const settled = new Set(page.settledByPush ?? []);
  for (const change of page.changes) applyChange(tx, change, page, settled, tally);
  for (const conflict of page.conflicts) tx.recordConflictOnce(conflict, page.nowMs);
  if (page.last) {
    if (page.reconcileSeen !== undefined) tally.removed = reconcile(tx, new Set(page.reconcileSeen));
    tx.setState('last_sync', JSON.stringify(page.serverTime)); // design.md §Watermark: the server's time, never ours
  }
  return tally;
}

export const APPLY_DELTA_PAGE = defineWriteProgram(import.meta.url, 'sync.applyDeltaPage', applyDeltaPage);

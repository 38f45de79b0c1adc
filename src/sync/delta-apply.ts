/**
 * Applying a pulled sync_delta page (seed §Sync Flow step 2) — the write program the sync client runs in the store's
 * writer, one transaction per page, relaxed (a page and its watermark lost to a power cut are pulled again from the
 * older watermark and applied again idempotently). Rules:
 *
 * - an echo of our own version (same sync_id) is skipped;
 * - an unpushed local change is never overwritten: the pulled version is recorded as a conflict and the push that
 *   follows lets the server arbitrate (docs/protocol.md §Conflicts);
 * - a changed device state yields a downlink command; nothing is written to the outbox, so nothing is echoed
 *   upstream. Where the entity has an unpushed local change, nothing is published here: the push result decides
 *   (push-apply.ts publishes the server's version if it won), so a losing value never reaches the device
 *   (docs/architecture.md §The life of a device state);
 * - a pulled version of an entity that a push result already decided after this page's watermark is skipped (a push
 *   on another connection while a live wait is held: the page was computed before the push committed, so what the
 *   push result said is newer);
 * - the watermark (last_sync, the server's time — docs/protocol.md §Watermark and delta) is saved with the LAST page
 *   only, so an interrupted sync is redone whole;
 * - a full resync (from last_sync null) reconciles on its last page: local entities the server knew (sync_id set),
 *   did not send, and that have nothing pending are removed (docs/protocol.md §Tombstones).
 *
 * The changes arrive already checked and normalised by the pull phase (pull.ts); this module runs on the writer's
 * thread and loads no zod.
 */
import { isDeepStrictEqual } from 'node:util';
import { applyRemoteState } from '../protocol/attributes.js';
import { bucketOf } from '../protocol/digest.js';
import type { EntityType } from '../protocol/entity-types.js';
import type { StoreTx } from '../store/tx.js';
import type { ConflictRecord, DeviceCommand, StoredEntity } from '../store/types.js';
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
  /** Attribute-level state (extension): `body.state` holds only the attributes changed since our watermark. */
  readonly partial?: boolean;
  /** With `partial`: attributes removed since our watermark. */
  readonly removedAttributes?: readonly string[];
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
  /**
   * A digest repair (docs/protocol.md §Convergence digest): the pages are the whole content of these buckets; the
   * last one removes the synced local entities of these buckets the server did not send, and saves no watermark.
   */
  readonly repairBuckets?: readonly number[];
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
  // A repair re-sends the server's version whatever our row claims to be (it may have been edited by hand): only an
  // identical row is an echo then.
  const same = page.repairBuckets === undefined ? local?.syncId === change.syncId : local !== undefined && !local.deleted && !change.deleted && isDeepStrictEqual(local.data, change.body);
  if (local !== undefined && same) {
    tally.echoes += 1; // our own version coming back
    return;
  }
  if (settled.has(remoteKey(change.entityType, change.entityId))) {
    tally.superseded += 1;
    return;
  }
  const nowMs = page.nowMs;
  const pending = tx.pendingClientSyncId(change.entityType, change.entityId);
  if (pending !== undefined && mergeAroundPending(tx, change, local, pending, tally, nowMs)) return;
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
    return; // the device hears of it only if the push result says the server's won
  }
  const body = change.partial === true && !change.deleted ? applyRemoteState(local?.data, change.body, { partial: true, removed: change.removedAttributes ?? [] }, NO_KEEP).data : change.body;
  const command = change.deleted ? undefined : downlinkFor(local, body);
  if (command !== undefined) tally.commands.push(command); // downlink: at once
  tx.upsertEntity({
    entityType: change.entityType,
    entityId: change.entityId,
    data: change.deleted && Object.keys(body).length === 0 ? (local?.data ?? {}) : body,
    updatedAt: change.updatedAt,
    syncId: change.syncId,
    deleted: change.deleted,
  });
  tally.applied += 1;
}

const NO_KEEP: ReadonlySet<string> = new Set();

/**
 * Attribute-level state: a pulled entity_state meets a pending local change of some attributes. The attributes the
 * pending change does not touch are taken now (the server merges the same way, and would not send them again); those
 * it does are left to the server's arbitration on push, recorded as a conflict. False when the pending change is the
 * whole data (the seed's rule applies: keep local, record).
 */
function mergeAroundPending(tx: StoreTx, change: RemoteChange, local: StoredEntity | undefined, pending: string, tally: Tally, nowMs: number): boolean {
  if (change.entityType !== 'entity_state' || change.deleted || local === undefined || local.deleted) return false;
  const names = tx.pendingAttributes(change.entityType, change.entityId);
  if (names === null || names === undefined) return false;
  const merged = applyRemoteState(local.data, change.body, { partial: change.partial === true, removed: change.removedAttributes ?? [] }, new Set(names));
  const command = downlinkFor(local, merged.data);
  if (command !== undefined) tally.commands.push(command);
  tx.mergeIntoPending(change.entityType, change.entityId, pending, merged.data);
  if (merged.touched.length > 0) {
    tally.conflicts += 1;
    tx.recordConflict(
      {
        entityType: change.entityType,
        entityId: change.entityId,
        type: 'UPDATE_UPDATE',
        reason: 'pending_local_change',
        resolution: 'server_arbitrates_on_push',
        serverVersion: { operation: change.operation, data: change.body, updated_at: change.updatedAtText, sync_id: change.syncId, deleted: false, attributes: merged.touched },
        clientVersion: { data: local.data, updated_at: local.updatedAt, client_sync_id: pending, deleted: false },
      },
      nowMs,
    );
  } else tally.applied += 1;
  return true;
}

/** Full resync (or a repair of some buckets): drops local entities the server did not send, that it knew, and that have nothing pending. */
function reconcile(tx: StoreTx, seen: ReadonlySet<string>, buckets?: ReadonlySet<number>): number {
  let removed = 0;
  for (const { entityType, entityId } of tx.syncedWithoutPending()) {
    if (seen.has(remoteKey(entityType, entityId))) continue;
    if (buckets !== undefined && !buckets.has(bucketOf(entityType, entityId))) continue;
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
    const buckets = page.repairBuckets === undefined ? undefined : new Set(page.repairBuckets);
    if (page.reconcileSeen !== undefined) tally.removed = reconcile(tx, new Set(page.reconcileSeen), buckets);
    // The watermark is the server's time, never ours. A repair is not a delta: the watermark stays.
    if (buckets === undefined) tx.setState('last_sync', JSON.stringify(page.serverTime));
  }
  return tally;
}

export const APPLY_DELTA_PAGE = defineWriteProgram(import.meta.url, 'sync.applyDeltaPage', applyDeltaPage);

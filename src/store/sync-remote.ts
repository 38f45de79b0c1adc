/**
 * Applying pulled changes (seed §Sync Flow step 2, sync_delta) to the gateway's store, one transaction per page:
 * echoes skipped, unpushed local changes never overwritten without a recorded conflict (design.md §Conflicts: the push
 * that follows lets the server arbitrate), downlink commands for changed device state (design.md §Downlink), no outbox
 * writes (no echo upstream). The watermark is saved with the LAST page only, so an interrupted sync is redone whole.
 * A full resync (last_sync null, e.g. after INVALID_SYNC_STATE) reconciles: local entities the server no longer has
 * are removed unless they still wait to be pushed.
 */
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import {
  DATA_SCHEMAS,
  describeIssues,
  normaliseEntityType,
  parseTimestamp,
  splitEnvelopeFields,
  type WireChange,
  type WireConflict,
} from '../protocol/index.js';
import type { Db } from './db.js';
import { relaxedTransaction } from './relaxed-durability.js';
import { SyncStateRepo } from './sync-state.js';
import { conflictRecordOf, downlinkFor, entityKey, SyncRows } from './sync-rows.js';
import type { DeviceCommand } from './types.js';

export interface RemotePage {
  readonly changes: readonly WireChange[];
  /** The delta's conflict entries (against this client's pushes); stored once each. */
  readonly conflicts?: readonly WireConflict[];
  /** The page's server_time; saved as the watermark (last_sync) with the last page. */
  readonly serverTime: string;
  /** True for the page with more=false. */
  readonly last: boolean;
  /** Present during a full resync: collects the keys seen on every page, reconciled after the last one. */
  readonly fullResync?: FullResyncTracker;
}

export interface FullResyncTracker {
  readonly seen: Set<string>;
}

export interface RemoteOutcome {
  readonly applied: number;
  readonly echoes: number;
  /** Pulled changes that met an unpushed local change (recorded, local kept). */
  readonly conflicts: number;
  readonly invalid: number;
  /** Local entities removed by a full resync's reconciliation. */
  readonly removed: number;
  readonly commands: DeviceCommand[];
}

export interface SyncRemoteOptions {
  readonly db: Db;
  readonly logger: Logger;
  readonly nowMs?: () => number;
}

export function newFullResyncTracker(): FullResyncTracker {
  return { seen: new Set<string>() };
}

export class SyncRemote {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #rows: SyncRows;
  readonly #state: SyncStateRepo;
  readonly #known: Database.Statement<[], { entity_type: string; entity_id: string }>;

  constructor(options: SyncRemoteOptions) {
    this.#db = options.db;
    this.#log = options.logger.child({ module: 'sync-remote' });
    this.#rows = new SyncRows(options.db, options.nowMs ?? Date.now);
    this.#state = new SyncStateRepo(options.db);
    this.#known = options.db.prepare(
      `SELECT e.entity_type, e.entity_id FROM entities e WHERE e.sync_id IS NOT NULL AND NOT EXISTS
         (SELECT 1 FROM outbox o WHERE o.entity_type = e.entity_type AND o.entity_id = e.entity_id)`,
    );
  }

  /**
   * Applies one sync_delta page atomically, committed without fsync (relaxed-durability.ts): a page and watermark
   * lost to a power cut are pulled again from the older watermark and applied again idempotently.
   */
  applyRemotePage(page: RemotePage): RemoteOutcome {
    return relaxedTransaction(this.#db, () => {
      const tally = { applied: 0, echoes: 0, conflicts: 0, invalid: 0, removed: 0, commands: [] as DeviceCommand[] };
      for (const change of page.changes) this.#applyChange(change, page.fullResync, tally);
      for (const conflict of page.conflicts ?? []) this.#rows.recordServerConflict(conflictRecordOf(conflict));
      if (page.last) {
        if (page.fullResync !== undefined) tally.removed = this.#reconcile(page.fullResync);
        this.#state.set('last_sync', page.serverTime); // design.md §Watermark: the server's time, never ours
      }
      return tally;
    });
  }

  #applyChange(
    change: WireChange,
    full: FullResyncTracker | undefined,
    tally: { applied: number; echoes: number; conflicts: number; invalid: number; commands: DeviceCommand[] },
  ): void {
    const entityType = normaliseEntityType(change.entity_type);
    const split = splitEnvelopeFields(change.data);
    const updatedAt = parseTimestamp(change.updated_at);
    if (entityType === undefined || !split.ok || updatedAt === undefined) {
      tally.invalid += 1;
      this.#log.warn({ entityType: change.entity_type, entityId: change.entity_id }, 'pulled change not usable, skipped');
      return;
    }
    full?.seen.add(entityKey(entityType, change.entity_id));
    const deleted = change.operation === 'delete';
    const body = split.value.body;
    if (!deleted) {
      const valid = DATA_SCHEMAS[entityType].safeParse(body);
      if (!valid.success) {
        tally.invalid += 1;
        this.#log.warn({ entityType, entityId: change.entity_id, problems: describeIssues(valid.error) }, 'pulled change has invalid data, skipped');
        return;
      }
    }
    const local = this.#rows.getEntity(entityType, change.entity_id);
    if (local !== undefined && local.syncId === change.sync_id) {
      tally.echoes += 1; // our own version coming back
      return;
    }
    const command = deleted ? undefined : downlinkFor(local, body);
    if (command !== undefined) tally.commands.push(command); // design.md §Downlink: at once, whatever comes later
    const pending = this.#rows.pendingClientSyncId(entityType, change.entity_id);
    if (pending !== undefined) {
      tally.conflicts += 1;
      this.#rows.recordConflict({
        entityType,
        entityId: change.entity_id,
        type: deleted || local?.deleted === true ? 'UPDATE_DELETE' : 'UPDATE_UPDATE',
        reason: 'pending_local_change',
        resolution: 'server_arbitrates_on_push',
        serverVersion: { operation: change.operation, data: body, updated_at: change.updated_at, sync_id: change.sync_id, deleted },
        clientVersion: local === undefined ? null : { data: local.data, updated_at: local.updatedAt, client_sync_id: pending, deleted: local.deleted },
      });
      return;
    }
    this.#rows.upsertEntity({
      entityType,
      entityId: change.entity_id,
      data: deleted && Object.keys(body).length === 0 ? (local?.data ?? {}) : body,
      updatedAt,
      syncId: change.sync_id,
      deleted,
    });
    tally.applied += 1;
  }

  /** Full resync: drop local entities the server did not send, that it knew, and that have nothing pending. */
  #reconcile(full: FullResyncTracker): number {
    let removed = 0;
    for (const row of this.#known.all()) {
      const entityType = normaliseEntityType(row.entity_type);
      if (entityType === undefined || full.seen.has(entityKey(entityType, row.entity_id))) continue;
      this.#rows.deleteEntity(entityType, row.entity_id);
      removed += 1;
    }
    if (removed > 0) this.#log.info({ removed }, 'full resync removed local entities the server no longer has');
    return removed;
  }
}

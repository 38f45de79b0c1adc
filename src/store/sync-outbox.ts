/**
 * The outbox as the sync client sees it (design.md §Outbox): take pending changes in priority order, and apply a
 * sync_result (seed §4) — clear only what was decided, by client_sync_id, so a newer local version that arrived while
 * the older one was in flight survives; take the server's winner; record every conflict and rejection.
 */
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import {
  normaliseEntityType,
  OperationSchema,
  parseTimestamp,
  splitEnvelopeFields,
  type SyncResult,
  type WireApplied,
  type WireConflict,
} from '../protocol/index.js';
import type { Db } from './db.js';
import { relaxedTransaction } from './relaxed-durability.js';
import { conflictRecordOf, downlinkFor, parseDataColumn, SyncRows } from './sync-rows.js';
import type { DeviceCommand, PendingChange } from './types.js';

interface OutboxRow {
  entity_type: string;
  entity_id: string;
  client_sync_id: string;
  operation: string;
  data: string;
  updated_at: number;
  critical: number;
  first_queued_at: number;
  attempts: number;
}

export interface PushOutcome {
  readonly applied: number;
  readonly conflicts: number;
  readonly rejected: number;
  /** Pushed changes the result did not mention: left in the outbox, pushed again next time. */
  readonly unanswered: number;
  readonly commands: DeviceCommand[];
}

export interface SyncOutboxOptions {
  readonly db: Db;
  readonly logger: Logger;
  readonly nowMs?: () => number;
}

export class SyncOutbox {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #rows: SyncRows;
  readonly #take: Database.Statement<[number], OutboxRow>;
  readonly #bump: Database.Statement<[string, string, string]>;
  readonly #deleteById: Database.Statement<[string, string, string]>;
  readonly #count: Database.Statement<[], { n: number }>;
  readonly #rebaseEntities: Database.Statement<[number]>;
  readonly #rebaseOutbox: Database.Statement<[number]>;

  constructor(options: SyncOutboxOptions) {
    this.#db = options.db;
    this.#log = options.logger.child({ module: 'sync-outbox' });
    this.#rows = new SyncRows(options.db, options.nowMs ?? Date.now);
    // seed §Batching: states (0) > devices (1) > rooms (2), then oldest first.
    this.#take = options.db.prepare('SELECT * FROM outbox ORDER BY priority, first_queued_at, client_sync_id LIMIT ?');
    // By primary key plus client_sync_id: the outbox has no secondary index (each one costs a page write per ingest
    // commit, docs/architecture.md §Disk writes), and matching the id keeps a newer version safe.
    this.#bump = options.db.prepare('UPDATE outbox SET attempts = attempts + 1 WHERE entity_type = ? AND entity_id = ? AND client_sync_id = ?');
    this.#deleteById = options.db.prepare('DELETE FROM outbox WHERE entity_type = ? AND entity_id = ? AND client_sync_id = ?');
    this.#count = options.db.prepare('SELECT COUNT(*) AS n FROM outbox');
    this.#rebaseEntities = options.db.prepare(
      `UPDATE entities SET updated_at = updated_at + ? WHERE EXISTS (SELECT 1 FROM outbox o WHERE
         o.entity_type = entities.entity_type AND o.entity_id = entities.entity_id AND o.updated_at = entities.updated_at)`,
    );
    this.#rebaseOutbox = options.db.prepare('UPDATE outbox SET updated_at = updated_at + ?');
  }

  pendingCount(): number {
    return this.#count.get()?.n ?? 0;
  }

  /**
   * design.md §Clock: when the server offset is first learnt (or the local clock steps), pending changes were stamped
   * with the old offset; shift them (and the local versions they carry) by the difference, so a Pi that booted with a
   * wrong clock neither writes a wrong time upstream nor loses every conflict. Returns the rows shifted.
   */
  rebasePending(deltaMicros: number): number {
    const delta = Math.round(deltaMicros);
    if (delta === 0) return 0;
    return this.#db.transaction(() => {
      this.#rebaseEntities.run(delta);
      return this.#rebaseOutbox.run(delta).changes;
    })();
  }

  /**
   * Up to `limit` pending changes, highest priority first. Reading writes nothing (a write per row per cycle would
   * wear the SD card for a diagnostic); `attempts` counts pushes that got no result (`recordFailedAttempt`).
   */
  takePending(limit: number): PendingChange[] {
    return relaxedTransaction(this.#db, () => {
      const out: PendingChange[] = [];
      for (const row of this.#take.all(limit)) {
        const entityType = normaliseEntityType(row.entity_type);
        const operation = OperationSchema.safeParse(row.operation);
        if (entityType === undefined || !operation.success) {
          this.#log.warn({ row: { ...row, data: undefined } }, 'outbox row with unknown type/operation dropped');
          this.#deleteById.run(row.entity_type, row.entity_id, row.client_sync_id);
          continue;
        }
        out.push({
          entityType,
          entityId: row.entity_id,
          clientSyncId: row.client_sync_id,
          operation: operation.data,
          data: parseDataColumn(row.data),
          updatedAt: row.updated_at,
          critical: row.critical !== 0,
          firstQueuedAt: row.first_queued_at,
          attempts: row.attempts,
        });
      }
      return out;
    });
  }

  /** Counts a push of these changes that got no sync_result (transport failure, error answer). */
  recordFailedAttempt(changes: readonly PendingChange[]): void {
    relaxedTransaction(this.#db, () => {
      for (const c of changes) this.#bump.run(c.entityType, c.entityId, c.clientSyncId);
    });
  }

  /**
   * Applies one sync_result for the changes that were pushed, in one transaction, committed without fsync
   * (relaxed-durability.ts): if a power cut loses it, the rows are still in the outbox, are pushed again with the
   * same client_sync_ids, and the server answers with its stored result (design.md §Idempotency).
   */
  applyPushResult(result: SyncResult, pushed: readonly PendingChange[]): PushOutcome {
    return relaxedTransaction(this.#db, () => this.#applyPushResult(result, pushed));
  }

  #applyPushResult(result: SyncResult, pushed: readonly PendingChange[]): PushOutcome {
    const byId = new Map(pushed.map((change) => [change.clientSyncId, change]));
    const conflictFor = indexConflicts(result.conflicts);
    const commands: DeviceCommand[] = [];
    let applied = 0;
    let conflicts = 0;
    let rejected = 0;
    const answered = new Set<string>();
    for (const entry of result.applied) {
      const change = byId.get(entry.client_sync_id);
      if (change === undefined) {
        this.#log.warn({ clientSyncId: entry.client_sync_id }, 'sync_result names a change that was not pushed');
        continue;
      }
      answered.add(entry.client_sync_id);
      this.#deleteById.run(change.entityType, change.entityId, change.clientSyncId);
      if (entry.status === 'applied') {
        applied += 1;
        if (entry.server_sync_id !== null) {
          this.#rows.setSyncIdIfUnchanged(change.entityType, change.entityId, change.updatedAt, entry.server_sync_id);
        }
      } else if (entry.status === 'conflict') {
        conflicts += 1;
        const command = this.#takeServerWinner(change, conflictFor(change));
        if (command !== undefined) commands.push(command);
      } else {
        rejected += 1;
        this.#recordRejection(change, entry);
      }
    }
    for (const conflict of result.conflicts) this.#rows.recordServerConflict(conflictRecordOf(conflict));
    return { applied, conflicts, rejected, unanswered: pushed.length - answered.size, commands };
  }

  /** A server_wins conflict: unless a newer local version is pending, the local entity takes the server's version. */
  #takeServerWinner(change: PendingChange, conflict: WireConflict | undefined): DeviceCommand | undefined {
    const server = conflict?.server_version;
    if (server === undefined || server === null) return undefined;
    if (this.#rows.pendingClientSyncId(change.entityType, change.entityId) !== undefined) return undefined;
    const split = splitEnvelopeFields(server.data);
    const updatedAt = parseTimestamp(server.updated_at);
    if (!split.ok || updatedAt === undefined) {
      this.#log.warn({ entityId: change.entityId, problems: split.ok ? [] : split.problems }, 'unusable server_version');
      return undefined;
    }
    const local = this.#rows.getEntity(change.entityType, change.entityId);
    const data = server.deleted && Object.keys(split.value.body).length === 0 ? (local?.data ?? {}) : split.value.body;
    this.#rows.upsertEntity({
      entityType: change.entityType,
      entityId: change.entityId,
      data,
      updatedAt,
      syncId: server.sync_id,
      deleted: server.deleted,
    });
    return server.deleted ? undefined : downlinkFor(local, data);
  }

  #recordRejection(change: PendingChange, entry: WireApplied): void {
    const code = entry.error?.code ?? 'REJECTED';
    const message = entry.error?.message ?? 'rejected by the server';
    this.#log.warn(
      { entityType: change.entityType, entityId: change.entityId, clientSyncId: change.clientSyncId, code, message },
      'server rejected a pushed change; dropped from the outbox and recorded in conflicts',
    );
    this.#rows.recordConflict({
      entityType: change.entityType,
      entityId: change.entityId,
      type: 'REJECTED',
      reason: `${code}: ${message}`,
      resolution: 'rejected',
      serverVersion: null,
      clientVersion: { operation: change.operation, data: change.data, updated_at: change.updatedAt, client_sync_id: change.clientSyncId },
    });
  }

}

/** Finds the conflict entry of a pushed change: by client_sync_id when the server gives it, else by entity. */
function indexConflicts(conflicts: readonly WireConflict[]): (change: PendingChange) => WireConflict | undefined {
  const byClientSyncId = new Map<string, WireConflict>();
  const byEntity = new Map<string, WireConflict>();
  for (const conflict of conflicts) {
    if (conflict.client_sync_id !== undefined) byClientSyncId.set(conflict.client_sync_id, conflict);
    const type = normaliseEntityType(conflict.entity_type) ?? conflict.entity_type;
    byEntity.set(`${type}\u0000${conflict.entity_id}`, conflict);
  }
  return (change) =>
    byClientSyncId.get(change.clientSyncId) ?? byEntity.get(`${change.entityType}\u0000${change.entityId}`);
}

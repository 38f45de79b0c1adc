/**
 * Row operations of the store's write connection (StoreTx): what a write program (ingest's local updates, sync's
 * delta pages and push results, the store's own small writes) may do inside its transaction. Every statement of the
 * gateway that writes is here, prepared once per connection. Rows that cannot be read back (bad JSON, an unknown
 * entity type) are reported (`corrupt`) so the store logs and counts them; a program decides what to do next.
 *
 * This module runs on whichever thread owns the write connection; it loads neither zod nor a logger.
 */
import type Database from 'better-sqlite3';
import { normaliseEntityType, type EntityType } from '../protocol/entity-types.js';
import type { Db } from './db.js';
import { ClientSyncIds } from './sync-ids.js';
import type { ConflictRecord, CorruptRow, LocalChange, StoredEntity } from './types.js';

interface EntityRow {
  entity_type: string;
  entity_id: string;
  data: string;
  updated_at: number;
  sync_id: string | null;
  deleted: number;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a stored JSON object column; undefined (with the reason) when it is not one. */
export function parseJsonObject(text: string): { ok: true; value: Record<string, unknown> } | { ok: false; problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, problem: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  return isRecord(value) ? { ok: true, value } : { ok: false, problem: `not a JSON object (${Array.isArray(value) ? 'array' : typeof value})` };
}

export function entityKey(entityType: string, entityId: string): string {
  return `${entityType}/${entityId}`;
}

/**
 * A device, as the device limits count them (ingest.deviceLimits): an id with a live device row or a live state row
 * (a device that only ever reported a state counts).
 */
export const DEVICE_KNOWN_SQL = "SELECT 1 AS one FROM entities WHERE entity_type IN ('device', 'entity_state') AND entity_id = ? AND deleted = 0 LIMIT 1";
export const DEVICE_COUNT_SQL = "SELECT COUNT(DISTINCT entity_id) AS n FROM entities WHERE entity_type IN ('device', 'entity_state') AND deleted = 0";

function jsonOrNull(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

class Statements {
  readonly getEntity: Database.Statement<[string, string], EntityRow>;
  readonly deviceType: Database.Statement<[string], { device_type: unknown }>;
  readonly writeLocal: Database.Statement<[string, string, string, number, string, string, number, number, string | null]>;
  readonly upsertEntity: Database.Statement<[string, string, string, number, string | null, number]>;
  readonly setSyncId: Database.Statement<[string, string, string, number]>;
  readonly deleteEntity: Database.Statement<[string, string]>;
  readonly syncedWithoutPending: Database.Statement<[], { entity_type: string; entity_id: string }>;
  readonly pendingFor: Database.Statement<[string, string], { pending_csid: string | null; pending_attrs: string | null }>;
  readonly mergeIntoPending: Database.Statement<[string, string, string, string]>;
  readonly clearPending: Database.Statement<[string, string, string]>;
  readonly bumpAttempts: Database.Statement<[string, string, string]>;
  readonly rebase: Database.Statement<[number]>;
  readonly insertConflict: Database.Statement<[number, string, string, string, string, string, string | null, string | null]>;
  readonly findConflict: Database.Statement<[string, string, string, string, string | null], { id: number }>;
  readonly pruneConflicts: Database.Statement<[number]>;
  readonly setState: Database.Statement<[string, string]>;
  readonly deleteState: Database.Statement<[string]>;
  readonly deviceKnown: Database.Statement<[string], { one: number }>;
  readonly deviceCount: Database.Statement<[], { n: number }>;

  constructor(db: Db) {
    this.getEntity = db.prepare('SELECT * FROM entities WHERE entity_type = ? AND entity_id = ?');
    this.deviceType = db.prepare(
      "SELECT json_extract(data, '$.device_type') AS device_type FROM entities WHERE entity_type = 'device' AND entity_id = ? AND deleted = 0",
    );
    // A new local version and its pending change, in the entity's one row (one page write per state): data and
    // stamp replaced, sync_id cleared; a pending change already there keeps its first_queued_at, its critical flag
    // and a not-yet-pushed 'create' (the server has never seen the entity); attempts start again.
    this.writeLocal = db.prepare(
      `INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted, pending_csid, pending_op, critical, first_queued_at, attempts, pending_attrs)
       VALUES (?, ?, ?, ?, NULL, 0, ?, ?, ?, ?, 0, ?)
       ON CONFLICT (entity_type, entity_id) DO UPDATE SET
         pending_attrs = CASE WHEN entities.pending_csid IS NULL THEN excluded.pending_attrs
                              WHEN entities.pending_attrs IS NULL OR excluded.pending_attrs IS NULL THEN NULL
                              ELSE (SELECT json_group_array(value) FROM (SELECT value FROM json_each(entities.pending_attrs)
                                      UNION SELECT value FROM json_each(excluded.pending_attrs))) END,
         data = excluded.data, updated_at = excluded.updated_at, sync_id = NULL, deleted = 0,
         pending_op = CASE WHEN entities.pending_csid IS NULL THEN excluded.pending_op
                           WHEN excluded.pending_op = 'create' AND entities.pending_op = 'create' THEN 'create' ELSE 'update' END,
         critical = CASE WHEN entities.pending_csid IS NULL THEN excluded.critical ELSE max(entities.critical, excluded.critical) END,
         first_queued_at = CASE WHEN entities.pending_csid IS NULL THEN excluded.first_queued_at ELSE entities.first_queued_at END,
         pending_csid = excluded.pending_csid, attempts = 0`,
    );
    // A version from the server: the pending columns are left as they are (the rules only write it when none is pending).
    this.upsertEntity = db.prepare(
      `INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (entity_type, entity_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at,
         sync_id = excluded.sync_id, deleted = excluded.deleted`,
    );
    this.setSyncId = db.prepare('UPDATE entities SET sync_id = ? WHERE entity_type = ? AND entity_id = ? AND updated_at = ?');
    this.deleteEntity = db.prepare('DELETE FROM entities WHERE entity_type = ? AND entity_id = ?');
    this.syncedWithoutPending = db.prepare('SELECT entity_type, entity_id FROM entities WHERE sync_id IS NOT NULL AND pending_csid IS NULL');
    this.pendingFor = db.prepare('SELECT pending_csid, pending_attrs FROM entities WHERE entity_type = ? AND entity_id = ?');
    this.mergeIntoPending = db.prepare('UPDATE entities SET data = ? WHERE entity_type = ? AND entity_id = ? AND pending_csid = ?');
    // By primary key plus client_sync_id: matching the id keeps a newer version safe.
    this.clearPending = db.prepare(
      `UPDATE entities SET pending_csid = NULL, pending_op = NULL, critical = 0, first_queued_at = NULL, attempts = 0, pending_attrs = NULL
       WHERE entity_type = ? AND entity_id = ? AND pending_csid = ?`,
    );
    this.bumpAttempts = db.prepare('UPDATE entities SET attempts = attempts + 1 WHERE entity_type = ? AND entity_id = ? AND pending_csid = ?');
    this.rebase = db.prepare('UPDATE entities SET updated_at = updated_at + ? WHERE pending_csid IS NOT NULL');
    this.insertConflict = db.prepare(
      `INSERT INTO conflicts (recorded_at, entity_type, entity_id, type, reason, resolution, server_version, client_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.findConflict = db.prepare(
      `SELECT id FROM conflicts WHERE entity_type = ? AND entity_id = ? AND type = ? AND resolution = ?
         AND client_version IS ? LIMIT 1`,
    );
    this.pruneConflicts = db.prepare('DELETE FROM conflicts WHERE recorded_at < ?');
    this.setState = db.prepare('INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    this.deleteState = db.prepare('DELETE FROM sync_state WHERE key = ?');
    this.deviceKnown = db.prepare(DEVICE_KNOWN_SQL);
    this.deviceCount = db.prepare(DEVICE_COUNT_SQL);
  }
}

/** What one transaction reports besides its program's result. */
export interface TxEffects {
  /** sync_state keys written (value JSON) or deleted (null), in order: the store's cache follows them. */
  readonly stateWrites: Array<[string, string | null]>;
  readonly corrupt: CorruptRow[];
}

/**
 * The row operations, bound to one write connection. A program gets it inside the writer's transaction; `effects`
 * collects what the store must learn when that transaction commits (cleared by the writer per transaction).
 */
export class StoreTx {
  readonly #db: Db;
  readonly #s: Statements;
  readonly #ids = new ClientSyncIds();
  effects: TxEffects = { stateWrites: [], corrupt: [] };

  constructor(db: Db) {
    this.#db = db;
    this.#s = new Statements(db);
  }

  /** Runs `fn` in a savepoint of the current transaction: if it throws, only its own writes are rolled back. */
  nested<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /** A time-ordered client sync id for a new local version (sync-ids.ts). */
  newClientSyncId(nowMicros: number): string {
    return this.#ids.next(nowMicros);
  }

  /** Reports a row that cannot be read back; the store logs and counts it. */
  corrupt(row: CorruptRow): void {
    this.effects.corrupt.push(row);
  }

  /** The stored entity; its data is `{}` (and the row reported corrupt) when the column is not a JSON object. */
  entity(entityType: EntityType, entityId: string): StoredEntity | undefined {
    const row = this.#s.getEntity.get(entityType, entityId);
    if (row === undefined) return undefined;
    const parsed = parseJsonObject(row.data);
    if (!parsed.ok) this.corrupt({ table: 'entities', key: entityKey(entityType, entityId), problem: parsed.problem });
    return {
      entityType: normaliseEntityType(row.entity_type) ?? entityType,
      entityId: row.entity_id,
      data: parsed.ok ? parsed.value : {},
      updatedAt: row.updated_at,
      syncId: row.sync_id,
      deleted: row.deleted !== 0,
    };
  }

  /** `device_type` of a live device entity, if it has a string one. */
  deviceType(deviceId: string): string | null {
    const type = this.#s.deviceType.get(deviceId)?.device_type;
    return typeof type === 'string' ? type : null;
  }

  /** Whether a live device or device state with this id exists (DEVICE_KNOWN_SQL). */
  deviceKnown(deviceId: string): boolean {
    return this.#s.deviceKnown.get(deviceId) !== undefined;
  }

  /** Devices in the store, as the device limits count them (DEVICE_COUNT_SQL). */
  deviceCount(): number {
    return this.#s.deviceCount.get()?.n ?? 0;
  }

  /**
   * A new local version and its pending change (one row): data and stamp replaced, sync_id cleared (the server does
   * not have it yet), live; a pending change already there keeps its first_queued_at, critical flag and a
   * not-yet-pushed 'create'; attempts start again.
   */
  writeLocalChange(c: LocalChange): void {
    const attrs = c.changedAttributes === undefined || c.operation !== 'update' ? null : JSON.stringify(c.changedAttributes);
    this.#s.writeLocal.run(c.entityType, c.entityId, JSON.stringify(c.data), c.updatedAt, c.clientSyncId, c.operation, c.critical ? 1 : 0, c.queuedAtMs, attrs);
  }

  /** A version from the server (delta page, conflict winner): every column as given. */
  upsertEntity(entity: StoredEntity): void {
    const s = this.#s;
    s.upsertEntity.run(entity.entityType, entity.entityId, JSON.stringify(entity.data), entity.updatedAt, entity.syncId, entity.deleted ? 1 : 0);
  }

  /** Records the server's id for a version only if the entity still holds that version (same updated_at). */
  setSyncIdIfUnchanged(entityType: EntityType, entityId: string, updatedAt: number, syncId: string): boolean {
    return this.#s.setSyncId.run(syncId, entityType, entityId, updatedAt).changes > 0;
  }

  deleteEntity(entityType: EntityType, entityId: string): void {
    this.#s.deleteEntity.run(entityType, entityId);
  }

  /** Entities the server has (sync_id set) with nothing pending: what a full resync may remove by absence. */
  syncedWithoutPending(): Array<{ entityType: EntityType; entityId: string }> {
    const out: Array<{ entityType: EntityType; entityId: string }> = [];
    for (const row of this.#s.syncedWithoutPending.iterate()) {
      const entityType = normaliseEntityType(row.entity_type);
      if (entityType === undefined) {
        this.corrupt({ table: 'entities', key: entityKey(row.entity_type, row.entity_id), problem: 'unknown entity type' });
        continue;
      }
      out.push({ entityType, entityId: row.entity_id });
    }
    return out;
  }

  /** The client_sync_id of the entity's pending change, if any. */
  pendingClientSyncId(entityType: EntityType, entityId: string): string | undefined {
    return this.#s.pendingFor.get(entityType, entityId)?.pending_csid ?? undefined;
  }

  /**
   * The attributes of the entity's pending change (attribute-level state): names, or null when the pending change is
   * the whole data; undefined when nothing is pending.
   */
  pendingAttributes(entityType: EntityType, entityId: string): readonly string[] | null | undefined {
    const row = this.#s.pendingFor.get(entityType, entityId);
    if (row?.pending_csid === null || row === undefined) return undefined;
    if (row.pending_attrs === null) return null;
    try {
      const names: unknown = JSON.parse(row.pending_attrs);
      return Array.isArray(names) && names.every((n) => typeof n === 'string') ? (names as string[]) : null;
    } catch {
      return null;
    }
  }

  /** Replaces the data of an entity whose pending change is still `clientSyncId`, leaving the pending change as it is. */
  mergeIntoPending(entityType: EntityType, entityId: string, clientSyncId: string, data: Record<string, unknown>): boolean {
    return this.#s.mergeIntoPending.run(JSON.stringify(data), entityType, entityId, clientSyncId).changes > 0;
  }

  /** Clears a pending change only if it is still that version (client_sync_id); true when it was. */
  clearPending(entityType: EntityType, entityId: string, clientSyncId: string): boolean {
    return this.#s.clearPending.run(entityType, entityId, clientSyncId).changes > 0;
  }

  /** Counts a push of this version that got no result. */
  bumpAttempts(entityType: string, entityId: string, clientSyncId: string): void {
    this.#s.bumpAttempts.run(entityType, entityId, clientSyncId);
  }

  /** Shifts every pending change (the local version it is) by `deltaMicros`; returns the rows shifted. */
  rebasePending(deltaMicros: number): number {
    return this.#s.rebase.run(deltaMicros).changes;
  }

  recordConflict(record: ConflictRecord, nowMs: number): void {
    this.#s.insertConflict.run(
      nowMs,
      record.entityType,
      record.entityId,
      record.type,
      record.reason.slice(0, 1000),
      record.resolution,
      jsonOrNull(record.serverVersion),
      jsonOrNull(record.clientVersion),
    );
  }

  /**
   * Records a conflict entry the server reported, once: the same entry can come back in a retried push's stored
   * result and in the next sync_delta's `conflicts` (docs/protocol.md §Idempotency). True when it was new.
   */
  recordConflictOnce(record: ConflictRecord, nowMs: number): boolean {
    const client = jsonOrNull(record.clientVersion);
    if (this.#s.findConflict.get(record.entityType, record.entityId, record.type, record.resolution, client) !== undefined) return false;
    this.recordConflict(record, nowMs);
    return true;
  }

  pruneConflicts(beforeMs: number): number {
    return this.#s.pruneConflicts.run(beforeMs).changes;
  }

  /** Writes one sync_state row (value already JSON). */
  setState(key: string, json: string): void {
    this.#s.setState.run(key, json);
    this.effects.stateWrites.push([key, json]);
  }

  deleteState(key: string): void {
    this.#s.deleteState.run(key);
    this.effects.stateWrites.push([key, null]);
  }
}

/**
 * Row access shared by the sync side of the store (sync-outbox.ts, sync-remote.ts): entities read and written as
 * StoredEntity, the pending-row check, conflict records, and the state diff that drives downlink (design.md §Downlink).
 * Statements are prepared once per store.
 */
import type Database from 'better-sqlite3';
import { isDeepStrictEqual } from 'node:util';
import { DataSchema, normaliseEntityType, type EntityType, type WireConflict } from '../protocol/index.js';
import type { Db } from './db.js';
import type { DeviceCommand, StoredEntity } from './types.js';

interface EntityRow {
  entity_type: string;
  entity_id: string;
  data: string;
  updated_at: number;
  sync_id: string | null;
  deleted: number;
}

export interface ConflictRecord {
  readonly entityType: string;
  readonly entityId: string;
  /** UPDATE_UPDATE | UPDATE_DELETE | CREATE_CREATE (seed §Conflict Types), or REJECTED for a per-change rejection. */
  readonly type: string;
  readonly reason: string;
  readonly resolution: string;
  readonly serverVersion: unknown;
  readonly clientVersion: unknown;
}

export function entityKey(entityType: string, entityId: string): string {
  return `${entityType}\u0000${entityId}`;
}

/** Parses a stored data column; a damaged row reads as an empty object rather than crashing a sync. */
export function parseDataColumn(text: string): Record<string, unknown> {
  try {
    const parsed = DataSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

export class SyncRows {
  readonly db: Db;
  readonly #nowMs: () => number;
  readonly #getEntity: Database.Statement<[string, string], EntityRow>;
  readonly #upsertEntity: Database.Statement<[string, string, string, number, string | null, number]>;
  readonly #setSyncId: Database.Statement<[string, string, string, number]>;
  readonly #deleteEntity: Database.Statement<[string, string]>;
  readonly #pendingFor: Database.Statement<[string, string], { client_sync_id: string }>;
  readonly #insertConflict: Database.Statement<[number, string, string, string, string, string, string | null, string | null]>;
  readonly #findConflict: Database.Statement<[string, string, string, string, string | null], { id: number }>;

  constructor(db: Db, nowMs: () => number) {
    this.db = db;
    this.#nowMs = nowMs;
    this.#getEntity = db.prepare('SELECT * FROM entities WHERE entity_type = ? AND entity_id = ?');
    this.#upsertEntity = db.prepare(
      `INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (entity_type, entity_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at,
         sync_id = excluded.sync_id, deleted = excluded.deleted`,
    );
    this.#setSyncId = db.prepare(
      'UPDATE entities SET sync_id = ? WHERE entity_type = ? AND entity_id = ? AND updated_at = ?',
    );
    this.#deleteEntity = db.prepare('DELETE FROM entities WHERE entity_type = ? AND entity_id = ?');
    this.#pendingFor = db.prepare('SELECT client_sync_id FROM outbox WHERE entity_type = ? AND entity_id = ?');
    this.#insertConflict = db.prepare(
      `INSERT INTO conflicts (recorded_at, entity_type, entity_id, type, reason, resolution, server_version, client_version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#findConflict = db.prepare(
      `SELECT id FROM conflicts WHERE entity_type = ? AND entity_id = ? AND type = ? AND resolution = ?
         AND client_version IS ? LIMIT 1`,
    );
  }

  getEntity(entityType: EntityType, entityId: string): StoredEntity | undefined {
    const row = this.#getEntity.get(entityType, entityId);
    if (row === undefined) return undefined;
    return {
      entityType: normaliseEntityType(row.entity_type) ?? entityType,
      entityId: row.entity_id,
      data: parseDataColumn(row.data),
      updatedAt: row.updated_at,
      syncId: row.sync_id,
      deleted: row.deleted !== 0,
    };
  }

  upsertEntity(entity: StoredEntity): void {
    this.#upsertEntity.run(
      entity.entityType,
      entity.entityId,
      JSON.stringify(entity.data),
      entity.updatedAt,
      entity.syncId,
      entity.deleted ? 1 : 0,
    );
  }

  /** Records the server's id for a version only if the entity still holds that version (same updated_at). */
  setSyncIdIfUnchanged(entityType: EntityType, entityId: string, updatedAt: number, syncId: string): boolean {
    return this.#setSyncId.run(syncId, entityType, entityId, updatedAt).changes > 0;
  }

  deleteEntity(entityType: EntityType, entityId: string): void {
    this.#deleteEntity.run(entityType, entityId);
  }

  pendingClientSyncId(entityType: EntityType, entityId: string): string | undefined {
    return this.#pendingFor.get(entityType, entityId)?.client_sync_id;
  }

  recordConflict(record: ConflictRecord): void {
    this.#insertConflict.run(
      this.#nowMs(),
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
   * result and in the next sync_delta's `conflicts` (design.md §Idempotency), and is stored a single time.
   */
  recordServerConflict(record: ConflictRecord): boolean {
    const client = jsonOrNull(record.clientVersion);
    if (this.#findConflict.get(record.entityType, record.entityId, record.type, record.resolution, client) !== undefined) {
      return false;
    }
    this.recordConflict(record);
    return true;
  }
}

function jsonOrNull(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function stateOf(data: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const state = data?.state;
  const parsed = DataSchema.safeParse(state);
  return parsed.success ? parsed.data : undefined;
}

/**
 * design.md §Downlink: the attributes of an incoming entity_state that differ from the local one, as a command for
 * the device. Only entities the gateway already holds (live) produce commands: an unknown device is not ours to drive.
 */
export function downlinkFor(
  local: StoredEntity | undefined,
  incomingData: Record<string, unknown>,
): DeviceCommand | undefined {
  if (local === undefined || local.deleted || local.entityType !== 'entity_state') return undefined;
  const incoming = stateOf(incomingData);
  if (incoming === undefined) return undefined;
  const current = stateOf(local.data) ?? {};
  const attributes: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (!isDeepStrictEqual(current[name], value)) attributes[name] = value;
  }
  if (Object.keys(attributes).length === 0) return undefined;
  const deviceId = typeof incomingData.device_id === 'string' ? incomingData.device_id : local.data.device_id;
  return typeof deviceId === 'string' ? { deviceId, attributes } : undefined;
}

/** A conflict entry from the server (sync_result or sync_delta) as a conflicts-table record. */
export function conflictRecordOf(conflict: WireConflict): ConflictRecord {
  return {
    entityType: normaliseEntityType(conflict.entity_type) ?? conflict.entity_type,
    entityId: conflict.entity_id,
    type: conflict.type,
    reason: conflict.reason,
    resolution: conflict.resolution,
    serverVersion: conflict.server_version,
    clientVersion: conflict.client_version,
  };
}

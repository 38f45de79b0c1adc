/** Domain types shared by the gateway's store, ingest and sync (wire types live in protocol/messages.ts). */
import type { EntityType, Operation } from '../protocol/index.js';
import type { Micros } from '../protocol/timestamps.js';

/** A clock in server-corrected time (docs/architecture.md §Time); implemented by sync/clock.ts. */
export interface StampClock {
  /** Epoch microseconds, corrected by the offset estimated from the server's `server_time`. */
  nowMicros(): Micros;
}

/** An entity as the gateway holds it. */
export interface StoredEntity {
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly data: Record<string, unknown>;
  readonly updatedAt: Micros;
  readonly syncId: string | null;
  readonly deleted: boolean;
}

/** A row of the outbox: the one pending change of an entity. */
export interface PendingChange {
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly clientSyncId: string;
  readonly operation: Operation;
  readonly data: Record<string, unknown>;
  readonly updatedAt: Micros;
  readonly critical: boolean;
  readonly firstQueuedAt: number;
  readonly attempts: number;
  /**
   * Attribute-level state (extension): names of the state attributes set or removed since the server's version; the
   * push sends only these (`partial`). Null or absent: the whole data.
   */
  readonly attributes?: readonly string[] | null;
}

/** Attributes to send to a device (downlink, docs/architecture.md §The life of a device state). */
export interface DeviceCommand {
  readonly deviceId: string;
  readonly attributes: Record<string, unknown>;
}

/** A conflict-log entry (the conflicts table). */
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

/** A conflict-log row as read back (the `conflicts` command, the status page). */
export interface ConflictEntry {
  readonly id: number;
  /** Local epoch ms. */
  readonly recordedAt: number;
  readonly entityType: string;
  readonly entityId: string;
  readonly type: string;
  readonly reason: string;
  readonly resolution: string;
  /** The server's version and the gateway's, as recorded (null when the entry has none). */
  readonly serverVersion: unknown;
  readonly clientVersion: unknown;
}

/** A new local version of an entity and its pending change (StoreTx.writeLocalChange). */
export interface LocalChange {
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly data: Record<string, unknown>;
  readonly updatedAt: Micros;
  readonly clientSyncId: string;
  /** 'create' when the server has never had the entity. */
  readonly operation: Operation;
  readonly critical: boolean;
  /** Local epoch ms; a pending change already there keeps its own. */
  readonly queuedAtMs: number;
  /** entity_state: the attributes this write set or removed (joined with those already pending); absent: whole. */
  readonly changedAttributes?: readonly string[];
}

/** A row the store could not read back (bad JSON, unknown type): logged and counted, never repaired silently. */
export interface CorruptRow {
  /** `outbox`: the pending-change columns of an entity row. */
  readonly table: 'entities' | 'outbox' | 'sync_state' | 'conflicts';
  readonly key: string;
  readonly problem: string;
}

/** Which pending changes to take: only these entity types, and deletes or not (a server that stores less). */
export interface PendingFilter {
  readonly types: readonly string[];
  readonly deletes: boolean;
}

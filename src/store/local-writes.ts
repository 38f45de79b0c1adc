/**
 * Local writes from ingest (design.md §Durable ingest, §Outbox, §Clock), run inside the group-commit transaction.
 *
 * - entity ids: device = device_id; entity_state = device_id with data {device_id, state}; room = `room-<slug>`.
 * - A state update merges its attributes into the stored state (shallow); a merged state equal to the stored one
 *   writes nothing and queues nothing (a duplicate).
 * - A written entity gets updated_at = max(clock, previous + 1) (monotonic per entity, server-corrected clock),
 *   sync_id = null, and its one outbox row is replaced by the new version (new client_sync_id, first_queued_at kept).
 *
 * Updates of one batch are coalesced per entity first, so N reports of one device in a window cost one write.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type Database from 'better-sqlite3';
import { ENTITY_PRIORITY, type EntityType, type Operation } from '../protocol/index.js';
import { DEFAULT_CRITICAL_CONFIG, isCriticalChange, type CriticalConfig } from '../ingest/critical.js';
import type { Db } from './db.js';
import { newClientSyncId } from './sync-ids.js';
import type { StampClock } from './types.js';

/** A typed update produced by an ingest adapter (domain type, camelCase). */
export type LocalUpdate =
  | { readonly kind: 'state'; readonly deviceId: string; readonly attributes: Readonly<Record<string, unknown>> }
  | {
      readonly kind: 'meta';
      readonly deviceId: string;
      readonly name: string;
      readonly type: string | null;
      readonly room: string | null;
      readonly manufacturer?: string | null;
      readonly model?: string | null;
    }
  | { readonly kind: 'availability'; readonly deviceId: string; readonly available: boolean };

export interface LocalWriteOptions {
  readonly clock: StampClock;
  /** Local wall clock, epoch ms (outbox first_queued_at). */
  readonly now: () => number;
  readonly critical?: CriticalConfig;
}

export interface LocalWriteCounts {
  /** Entities written (each with its outbox row). */
  written: number;
  /** Updates that changed nothing. */
  duplicates: number;
  /** Entities written whose change is critical. */
  critical: number;
}

interface EntityRow {
  data: string;
  updated_at: number;
  sync_id: string | null;
  deleted: number;
}

interface Statements {
  getEntity: Database.Statement<[string, string], EntityRow>;
  upsertEntity: Database.Statement<[string, string, string, number]>;
  upsertOutbox: Database.Statement<[string, string, string, string, string, number, number, number, number]>;
  deviceType: Database.Statement<[string], { device_type: unknown }>;
}

const statementsByDb = new WeakMap<Db, Statements>();

function statements(db: Db): Statements {
  let s = statementsByDb.get(db);
  if (!s) {
    s = {
      getEntity: db.prepare('SELECT data, updated_at, sync_id, deleted FROM entities WHERE entity_type = ? AND entity_id = ?'),
      upsertEntity: db.prepare(
        `INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted) VALUES (?, ?, ?, ?, NULL, 0)
         ON CONFLICT (entity_type, entity_id) DO UPDATE
         SET data = excluded.data, updated_at = excluded.updated_at, sync_id = NULL, deleted = 0`,
      ),
      // One statement instead of read-then-write: the existing row keeps its first_queued_at, a pending critical
      // flag, and a not-yet-pushed 'create' (the server still has never seen the entity).
      upsertOutbox: db.prepare(
        `INSERT INTO outbox (entity_type, entity_id, client_sync_id, operation, data, updated_at, priority, critical,
                             first_queued_at, attempts)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
         ON CONFLICT (entity_type, entity_id) DO UPDATE
         SET client_sync_id = excluded.client_sync_id,
             operation = CASE WHEN excluded.operation = 'create' AND outbox.operation = 'create' THEN 'create' ELSE 'update' END,
             data = excluded.data, updated_at = excluded.updated_at, priority = excluded.priority,
             critical = max(outbox.critical, excluded.critical), attempts = 0`,
      ),
      deviceType: db.prepare(
        "SELECT json_extract(data, '$.device_type') AS device_type FROM entities WHERE entity_type = 'device' AND entity_id = ? AND deleted = 0",
      ),
    };
    statementsByDb.set(db, s);
  }
  return s;
}

/** `room-` + a slug of the name; names with no letters or digits get a short hash instead. */
export function roomIdFor(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return `room-${slug || createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** Stored data was validated when written; this guard only protects against a hand-edited row. */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseStored(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : {};
  } catch {
    return {};
  }
}

/** One entity as the batch sees it: the stored version and the version being built. */
interface Working {
  readonly type: EntityType;
  readonly id: string;
  readonly stored: EntityRow | undefined;
  readonly storedData: Record<string, unknown>;
  data: Record<string, unknown>;
  critical: boolean;
}

class Batch {
  readonly #s: Statements;
  readonly #critical: CriticalConfig;
  readonly working = new Map<string, Working>();
  duplicates = 0;

  constructor(s: Statements, critical: CriticalConfig) {
    this.#s = s;
    this.#critical = critical;
  }

  load(type: EntityType, id: string): Working {
    const key = `${type}\u0000${id}`;
    let w = this.working.get(key);
    if (!w) {
      const stored = this.#s.getEntity.get(type, id);
      const storedData = stored && stored.deleted === 0 ? parseStored(stored.data) : {};
      w = { type, id, stored, storedData, data: storedData, critical: false };
      this.working.set(key, w);
    }
    return w;
  }

  applyState(deviceId: string, attributes: Readonly<Record<string, unknown>>): void {
    const w = this.load('entity_state', deviceId);
    const state = isRecord(w.data.state) ? w.data.state : {};
    const changed: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(attributes)) {
      if (!isDeepStrictEqual(state[name], value) || !(name in state)) changed[name] = value;
    }
    if (Object.keys(changed).length === 0 && w.data.device_id === deviceId) {
      this.duplicates += 1;
      return;
    }
    w.data = { ...w.data, device_id: deviceId, state: { ...state, ...changed } };
    if (!w.critical && isCriticalChange(this.#deviceType(deviceId), changed, this.#critical)) w.critical = true;
  }

  /** The device's type as this batch sees it (a meta earlier in the batch counts). */
  #deviceType(deviceId: string): string | null {
    const working = this.working.get(`device\u0000${deviceId}`);
    const type = working ? working.data.device_type : this.#s.deviceType.get(deviceId)?.device_type;
    return typeof type === 'string' ? type : null;
  }

  applyMeta(update: Extract<LocalUpdate, { kind: 'meta' }>): void {
    let changed = false;
    let roomId: string | null = null;
    if (update.room !== null) {
      roomId = roomIdFor(update.room);
      const room = this.load('room', roomId);
      const next = { ...room.data, name: update.room };
      if (!isDeepStrictEqual(next, room.data)) {
        room.data = next;
        changed = true;
      }
    }
    const device = this.load('device', update.deviceId);
    // A meta that does not name a room (zigbee2mqtt, Tasmota, most discovery configs) keeps the device's room: it
    // may have been set on the server, and republished metadata must not undo that.
    if (roomId === null && typeof device.data.room_id === 'string') roomId = device.data.room_id;
    const next: Record<string, unknown> = { ...device.data, name: update.name, device_type: update.type, room_id: roomId };
    if (update.manufacturer !== undefined) next.manufacturer = update.manufacturer;
    if (update.model !== undefined) next.model = update.model;
    if (!isDeepStrictEqual(next, device.data)) {
      device.data = next;
      changed = true;
    }
    if (!changed) this.duplicates += 1;
  }
}

/** Applies ingest updates; call inside a transaction (the group commit's). */
export function applyLocalUpdates(db: Db, updates: readonly LocalUpdate[], options: LocalWriteOptions): LocalWriteCounts {
  const s = statements(db);
  const batch = new Batch(s, options.critical ?? DEFAULT_CRITICAL_CONFIG);
  for (const update of updates) {
    if (update.kind === 'state') batch.applyState(update.deviceId, update.attributes);
    else if (update.kind === 'availability') batch.applyState(update.deviceId, { available: update.available });
    else batch.applyMeta(update);
  }
  const counts: LocalWriteCounts = { written: 0, duplicates: batch.duplicates, critical: 0 };
  for (const w of batch.working.values()) {
    // Unchanged, or changed and changed back within the batch: nothing to write.
    if (w.data === w.storedData || (w.stored?.deleted === 0 && isDeepStrictEqual(w.data, w.storedData))) continue;
    writeEntity(s, w, options);
    counts.written += 1;
    if (w.critical) counts.critical += 1;
  }
  return counts;
}

function writeEntity(s: Statements, w: Working, options: LocalWriteOptions): void {
  // design.md §Clock: server-corrected time, monotonic per entity.
  const updatedAt = Math.max(options.clock.nowMicros(), (w.stored?.updated_at ?? 0) + 1);
  const data = JSON.stringify(w.data);
  s.upsertEntity.run(w.type, w.id, data, updatedAt);
  // 'create' when the server never had it: no synced version here, and (in SQL) no pending row but a 'create'.
  const operation: Operation = w.stored === undefined || w.stored.sync_id === null ? 'create' : 'update';
  s.upsertOutbox.run(
    w.type,
    w.id,
    newClientSyncId(updatedAt),
    operation,
    data,
    updatedAt,
    ENTITY_PRIORITY[w.type],
    w.critical ? 1 : 0,
    options.now(),
  );
}

/**
 * Local writes from ingest (docs/architecture.md §The life of a device state): the write program the group commit runs
 * in the store's writer, durable for a batch holding a QoS 1 message.
 *
 * - entity ids: device = device_id; entity_state = device_id with data {device_id, state}; room = `room-<slug>`.
 * - A state update merges its attributes into the stored state (shallow); a merged state equal to the stored one
 *   writes nothing and queues nothing (a duplicate).
 * - A written entity gets updated_at = max(stamp, previous + 1) (monotonic per entity, server-corrected clock),
 *   sync_id = null, and its one outbox row is replaced by the new version (new client_sync_id, first_queued_at kept).
 * - A change is critical by ingest's policy (critical.ts); the flag rides on the outbox row until pushed.
 *
 * Updates of one batch are coalesced per entity first, so N reports of one device in a window cost one write. This
 * module runs on the writer's thread: it loads neither zod nor a logger.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { EntityType } from '../protocol/entity-types.js';
import { changedAttributes } from '../protocol/attributes.js';
import type { StoreTx } from '../store/tx.js';
import type { StoredEntity } from '../store/types.js';
import { defineWriteProgram, isStoreWideError } from '../store/writer.js';
import { criticalPredicate, type CriticalConfig, type CriticalPredicate } from './critical.js';

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

export interface LocalWriteArgs {
  readonly updates: readonly LocalUpdate[];
  /** Server-corrected epoch µs when the batch was committed (docs/architecture.md §Time). */
  readonly nowMicros: number;
  /** Local wall clock, epoch ms (outbox first_queued_at). */
  readonly nowMs: number;
  readonly critical?: CriticalConfig;
  /**
   * At most this many devices in the store (ingest.deviceLimits.total): an update that would create one more is not
   * stored (refused, counted); updates of devices the store holds are never refused.
   */
  readonly maxDevices?: number;
}

export interface LocalWriteCounts {
  /** Entities written (each with its outbox row). */
  written: number;
  /** Updates that changed nothing. */
  duplicates: number;
  /** Entities written whose change is critical. */
  critical: number;
  /** Updates not stored because they would have created a device beyond maxDevices. */
  refused: number;
  /** The device ids refused (at most REFUSED_LISTED of them). */
  refusedDevices: string[];
}

const REFUSED_LISTED = 20;

/** The store's device limit inside one transaction: devices it holds pass, new ones while there is room. */
class DeviceRoom {
  readonly #tx: StoreTx;
  readonly #max: number | undefined;
  readonly #admitted = new Set<string>();
  #count: number | undefined;

  constructor(tx: StoreTx, max: number | undefined) {
    this.#tx = tx;
    this.#max = max;
  }

  admits(deviceId: string): boolean {
    if (this.#max === undefined || this.#admitted.has(deviceId)) return true;
    if (!this.#tx.deviceKnown(deviceId)) {
      this.#count ??= this.#tx.deviceCount(); // once per batch, and only when a new device shows up
      if (this.#count >= this.#max) return false;
      this.#count += 1;
    }
    this.#admitted.add(deviceId);
    return true;
  }
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

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One entity as the batch sees it: the stored version and the version being built. */
interface Working {
  readonly type: EntityType;
  readonly id: string;
  readonly stored: StoredEntity | undefined;
  readonly storedData: Record<string, unknown>;
  data: Record<string, unknown>;
  critical: boolean;
}

class Batch {
  readonly #tx: StoreTx;
  readonly #isCritical: CriticalPredicate;
  readonly working = new Map<string, Working>();
  duplicates = 0;

  constructor(tx: StoreTx, critical: CriticalConfig | undefined) {
    this.#tx = tx;
    this.#isCritical = criticalPredicate(critical);
  }

  load(type: EntityType, id: string): Working {
    const key = `${type}\u0000${id}`;
    let w = this.working.get(key);
    if (!w) {
      const stored = this.#tx.entity(type, id);
      // A tombstone's data is not merged into: the device is back with what it reports now.
      const storedData = stored && !stored.deleted ? stored.data : {};
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
    if (!w.critical && this.#isCritical(this.#deviceType(deviceId), changed)) w.critical = true;
  }

  /** The device's type as this batch sees it (a meta earlier in the batch counts). */
  #deviceType(deviceId: string): string | null {
    const working = this.working.get(`device\u0000${deviceId}`);
    if (!working) return this.#tx.deviceType(deviceId);
    const type = working.data.device_type;
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

/** Applies ingest updates inside the writer's transaction. */
export function applyLocalUpdates(tx: StoreTx, args: LocalWriteArgs): LocalWriteCounts {
  const batch = new Batch(tx, args.critical);
  const room = new DeviceRoom(tx, args.maxDevices);
  const refused = new Set<string>();
  let refusedUpdates = 0;
  for (const update of args.updates) {
    if (!room.admits(update.deviceId)) {
      refusedUpdates += 1;
      if (refused.size < REFUSED_LISTED) refused.add(update.deviceId);
      continue;
    }
    if (update.kind === 'state') batch.applyState(update.deviceId, update.attributes);
    else if (update.kind === 'availability') batch.applyState(update.deviceId, { available: update.available });
    else batch.applyMeta(update);
  }
  const counts: LocalWriteCounts = { written: 0, duplicates: batch.duplicates, critical: 0, refused: refusedUpdates, refusedDevices: [...refused] };
  for (const w of batch.working.values()) {
    // Unchanged, or changed and changed back within the batch: nothing to write.
    if (w.data === w.storedData || (w.stored?.deleted === false && isDeepStrictEqual(w.data, w.storedData))) continue;
    writeEntity(tx, w, args);
    counts.written += 1;
    if (w.critical) counts.critical += 1;
  }
  return counts;
}

function writeEntity(tx: StoreTx, w: Working, args: LocalWriteArgs): void {
  // docs/architecture.md §Time: server-corrected time, monotonic per entity.
  const updatedAt = Math.max(Math.floor(args.nowMicros), (w.stored?.updatedAt ?? 0) + 1);
  // Attribute-level state (docs/protocol.md, an extension): the push sends only what changed from the stored version.
  const changed = w.type === 'entity_state' && w.stored !== undefined && !w.stored.deleted ? changedAttributes(w.storedData, w.data) : undefined;
  tx.writeLocalChange({
    ...(changed === undefined ? {} : { changedAttributes: changed }),
    entityType: w.type,
    entityId: w.id,
    data: w.data,
    updatedAt,
    clientSyncId: tx.newClientSyncId(updatedAt),
    // 'create' when the server never had it: no synced version here (and, in the store, no pending change but a 'create').
    operation: w.stored === undefined || w.stored.syncId === null ? 'create' : 'update',
    critical: w.critical,
    queuedAtMs: args.nowMs,
  });
}

/** Local updates in one transaction (coalesced per entity). */
export const APPLY_LOCAL_UPDATES = defineWriteProgram(import.meta.url, 'ingest.applyLocalUpdates', applyLocalUpdates);

export interface MessagesArgs extends Omit<LocalWriteArgs, 'updates'> {
  /** The updates of each message of the batch, in arrival order. */
  readonly messages: ReadonlyArray<readonly LocalUpdate[]>;
}

export interface MessagesOutcome {
  readonly counts: LocalWriteCounts;
  /** Messages that could not be applied (their own fault, not the store's): index in `messages` and why. */
  readonly failed: ReadonlyArray<{ readonly index: number; readonly message: string }>;
}

/**
 * The group commit's program (durable for a batch with a QoS 1 message, relaxed for QoS 0 only): every message in
 * one transaction; if that fails for a reason of its own (not the store's: a full or read-only disk fails the whole
 * commit), each message is applied again in a savepoint of its own, in order, so one poison message is refused
 * while the rest commit — in the same transaction, so the writer's order of batches (and of a device's states) holds.
 */
export function applyMessages(tx: StoreTx, args: MessagesArgs): MessagesOutcome {
  const common = {
    nowMicros: args.nowMicros,
    nowMs: args.nowMs,
    ...(args.critical ? { critical: args.critical } : {}),
    ...(args.maxDevices !== undefined ? { maxDevices: args.maxDevices } : {}),
  };
  try {
    return { counts: tx.nested(() => applyLocalUpdates(tx, { ...common, updates: args.messages.flat() })), failed: [] };
  } catch (err) {
    if (isStoreWideError(err)) throw err;
  }
  const counts: LocalWriteCounts = { written: 0, duplicates: 0, critical: 0, refused: 0, refusedDevices: [] };
  const failed: Array<{ index: number; message: string }> = [];
  args.messages.forEach((updates, index) => {
    try {
      const c = tx.nested(() => applyLocalUpdates(tx, { ...common, updates }));
      counts.written += c.written;
      counts.duplicates += c.duplicates;
      counts.critical += c.critical;
      counts.refused += c.refused;
      for (const id of c.refusedDevices) if (counts.refusedDevices.length < REFUSED_LISTED) counts.refusedDevices.push(id);
    } catch (err) {
      if (isStoreWideError(err)) throw err;
      failed.push({ index, message: err instanceof Error ? err.message : String(err) });
    }
  });
  return { counts, failed };
}

export const APPLY_MESSAGES = defineWriteProgram(import.meta.url, 'ingest.applyMessages', applyMessages);

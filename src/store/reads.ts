/**
 * Reads of the gateway store on a read-only connection (WAL: readers never block the writer, and see every
 * committed transaction at the start of each statement). Used by the daemon's main thread (outbox for the sync
 * client, status, metrics, snapshots) and by the CLI while the daemon runs.
 */
import type Database from 'better-sqlite3';
import { normaliseEntityType } from '../protocol/entity-types.js';
import type { Operation } from '../protocol/index.js';
import type { Db } from './db.js';
import { DEVICE_KNOWN_SQL, entityKey, parseJsonObject } from './tx.js';
import type { CorruptRow, PendingChange, PendingFilter, StoredEntity } from './types.js';

interface EntityRow {
  entity_type: string;
  entity_id: string;
  data: string;
  updated_at: number;
  sync_id: string | null;
  deleted: number;
}

interface PendingRow {
  entity_type: string;
  entity_id: string;
  pending_csid: string;
  pending_op: string | null;
  data: string;
  updated_at: number;
  critical: number;
  first_queued_at: number | null;
  attempts: number;
  pending_attrs: string | null;
}

const OPERATIONS: ReadonlySet<string> = new Set<Operation>(['create', 'update', 'delete']);

function isOperation(text: string): text is Operation {
  return OPERATIONS.has(text);
}

/** The pending attribute names (a JSON array of strings); null — the whole data — when absent or unreadable. */
function attributeNames(text: string | null): string[] | null {
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : null;
  } catch {
    return null;
  }
}

/**
 * The pending changes, highest priority first. seed §Batching: states (0) > devices (1) > rooms (2), then oldest
 * first. No index: each one would cost a page write per state written (docs/architecture.md §Disk writes); the scan
 * sorts one row per entity.
 */
function takeSql(andWhere: string): string {
  return `SELECT entity_type, entity_id, pending_csid, pending_op, data, updated_at, critical, first_queued_at, attempts, pending_attrs FROM entities
     WHERE pending_csid IS NOT NULL${andWhere}
     ORDER BY CASE entity_type WHEN 'entity_state' THEN 0 WHEN 'device' THEN 1 ELSE 2 END, first_queued_at, pending_csid LIMIT ?`;
}

export class StoreReads {
  readonly #report: (row: CorruptRow) => void;
  readonly #entity: Database.Statement<[string, string], EntityRow>;
  readonly #entities: Database.Statement<[number], EntityRow>;
  readonly #devicesAndStates: Database.Statement<[], EntityRow>;
  readonly #countDevices: Database.Statement<[], { n: number }>;
  readonly #deviceKnown: Database.Statement<[string], { one: number }>;
  readonly #ofType: Database.Statement<[string], EntityRow>;
  readonly #deviceIds: Database.Statement<[], { entity_id: string }>;
  readonly #isPending: Database.Statement<[string, string], { n: number }>;
  readonly #take: Database.Statement<[number], PendingRow>;
  readonly #pendingKeys: Database.Statement<[], { entity_type: string; entity_id: string }>;
  readonly #outboxSummary: Database.Statement<[], { n: number; oldest: number | null }>;
  readonly #conflicts: Database.Statement<[], { n: number }>;
  readonly #state: Database.Statement<[string], { value: string }>;
  readonly #allState: Database.Statement<[], { key: string; value: string }>;
  readonly #pageCount: Database.Statement<[], { page_count: number }>;

  readonly #db: Db;

  constructor(db: Db, report: (row: CorruptRow) => void) {
    this.#db = db;
    this.#report = report;
    this.#entity = db.prepare('SELECT * FROM entities WHERE entity_type = ? AND entity_id = ?');
    this.#entities = db.prepare('SELECT * FROM entities WHERE deleted = 0 OR ? = 1 ORDER BY entity_type, entity_id');
    this.#devicesAndStates = db.prepare(
      "SELECT * FROM entities WHERE deleted = 0 AND entity_type IN ('device', 'entity_state') ORDER BY entity_id",
    );
    this.#countDevices = db.prepare("SELECT COUNT(*) AS n FROM entities WHERE entity_type = 'device' AND deleted = 0");
    this.#ofType = db.prepare('SELECT * FROM entities WHERE entity_type = ? AND deleted = 0 ORDER BY entity_id');
    this.#deviceIds = db.prepare("SELECT entity_id FROM entities WHERE entity_type = 'device' AND deleted = 0");
    this.#isPending = db.prepare('SELECT COUNT(*) AS n FROM entities WHERE entity_type = ? AND entity_id = ? AND pending_csid IS NOT NULL');
    this.#deviceKnown = db.prepare(DEVICE_KNOWN_SQL);
    this.#take = db.prepare(takeSql(''));
    this.#pendingKeys = db.prepare('SELECT entity_type, entity_id FROM entities WHERE pending_csid IS NOT NULL');
    this.#outboxSummary = db.prepare('SELECT COUNT(*) AS n, MIN(first_queued_at) AS oldest FROM entities WHERE pending_csid IS NOT NULL');
    this.#conflicts = db.prepare('SELECT COUNT(*) AS n FROM conflicts');
    this.#state = db.prepare('SELECT value FROM sync_state WHERE key = ?');
    this.#allState = db.prepare('SELECT key, value FROM sync_state');
    this.#pageCount = db.prepare('SELECT page_count FROM pragma_page_count()');
  }

  entity(entityType: string, entityId: string): StoredEntity | undefined {
    const row = this.#entity.get(entityType, entityId);
    return row === undefined ? undefined : this.#toEntity(row);
  }

  /** Every entity (live only unless `withDeleted`), ordered by type and id; unreadable rows reported and skipped. */
  entities(options: { withDeleted?: boolean } = {}): StoredEntity[] {
    return this.#entitiesOf(this.#entities.all(options.withDeleted ? 1 : 0));
  }

  /** Live device and entity_state rows (for the device list). */
  devicesAndStates(): StoredEntity[] {
    return this.#entitiesOf(this.#devicesAndStates.all());
  }

  /** Whether a live device or device state with this id exists (tx.ts DEVICE_KNOWN_SQL). */
  deviceKnown(deviceId: string): boolean {
    return this.#deviceKnown.get(deviceId) !== undefined;
  }

  countDevices(): number {
    return this.#countDevices.get()?.n ?? 0;
  }

  /** Live entities of one type (rooms, say), ordered by id. */
  ofType(entityType: string): StoredEntity[] {
    return this.#entitiesOf(this.#ofType.all(entityType));
  }

  /** Ids of the live devices (no data read). */
  deviceIds(): string[] {
    return this.#deviceIds.all().map((r) => r.entity_id);
  }

  /** The live device and entity_state rows of these devices, and the `type/id` keys among them with a pending change. */
  devicesAndStatesOf(ids: readonly string[]): { entities: StoredEntity[]; pending: Set<string> } {
    const entities: StoredEntity[] = [];
    const pending = new Set<string>();
    for (const id of ids) {
      for (const type of ['device', 'entity_state'] as const) {
        const entity = this.entity(type, id);
        if (entity !== undefined && !entity.deleted) entities.push(entity);
        if ((this.#isPending.get(type, id)?.n ?? 0) > 0) pending.add(entityKey(type, id));
      }
    }
    return { entities, pending };
  }

  /**
   * Up to `limit` pending changes, highest priority first (seed §Batching). Reading writes nothing. A row whose
   * type, operation or data cannot be read is reported (logged and counted by the store) and left where it is.
   */
  takePending(limit: number, only?: PendingFilter): PendingChange[] {
    const out: PendingChange[] = [];
    const rows = only === undefined ? this.#take.all(limit) : this.#takeOnly(only).all(limit);
    for (const row of rows) {
      const key = entityKey(row.entity_type, row.entity_id);
      const entityType = normaliseEntityType(row.entity_type);
      const data = parseJsonObject(row.data);
      const operation = row.pending_op ?? '';
      if (entityType === undefined || !isOperation(operation) || !data.ok) {
        const problem = entityType === undefined ? `unknown entity type ${JSON.stringify(row.entity_type)}` : data.ok ? `unknown operation ${JSON.stringify(operation)}` : data.problem;
        this.#report({ table: 'outbox', key, problem });
        continue;
      }
      out.push({
        entityType,
        entityId: row.entity_id,
        clientSyncId: row.pending_csid,
        operation,
        data: data.value,
        updatedAt: row.updated_at,
        critical: row.critical !== 0,
        firstQueuedAt: row.first_queued_at ?? 0,
        attempts: row.attempts,
        attributes: attributeNames(row.pending_attrs),
      });
    }
    return out;
  }

  readonly #takeOnlyCache = new Map<string, Database.Statement<[number], PendingRow>>();

  /**
   * The pending query restricted to some entity types (and without deletes): a server that cannot store a type keeps
   * those changes pending without them taking the place of the ones it can (docs/protocol.md §Compatibility).
   */
  #takeOnly(only: PendingFilter): Database.Statement<[number], PendingRow> {
    const types = [...new Set(only.types.map((t) => normaliseEntityType(t)).filter((t) => t !== undefined))].sort();
    const key = `${types.join(',')}|${only.deletes}`;
    let stmt = this.#takeOnlyCache.get(key);
    if (stmt === undefined) {
      // Only normalised type names reach the SQL text (see above): nothing from outside is interpolated.
      const inList = types.map((t) => `'${t}'`).join(', ') || "''";
      stmt = this.#db.prepare(takeSql(` AND entity_type IN (${inList})${only.deletes ? '' : " AND pending_op != 'delete'"}`));
      this.#takeOnlyCache.set(key, stmt);
    }
    return stmt;
  }

  /** `type/id` of every entity with a pending change. */
  pendingKeys(): Set<string> {
    return new Set(this.#pendingKeys.all().map((r) => entityKey(r.entity_type, r.entity_id)));
  }

  /** Pending changes and when the oldest was first queued (local epoch ms). */
  outboxSummary(): { pending: number; oldestQueuedAt: number | null } {
    const row = this.#outboxSummary.get();
    return { pending: row?.n ?? 0, oldestQueuedAt: row?.oldest ?? null };
  }

  conflictCount(): number {
    return this.#conflicts.get()?.n ?? 0;
  }

  /** The raw JSON text of a sync_state row. */
  stateJson(key: string): string | undefined {
    return this.#state.get(key)?.value;
  }

  allStateJson(): Array<{ key: string; value: string }> {
    return this.#allState.all();
  }

  pageCount(): number {
    return this.#pageCount.get()?.page_count ?? 0;
  }

  #entitiesOf(rows: readonly EntityRow[]): StoredEntity[] {
    const out: StoredEntity[] = [];
    for (const row of rows) {
      const entity = this.#toEntity(row);
      if (entity !== undefined) out.push(entity);
    }
    return out;
  }

  #toEntity(row: EntityRow): StoredEntity | undefined {
    const key = entityKey(row.entity_type, row.entity_id);
    const entityType = normaliseEntityType(row.entity_type);
    const data = parseJsonObject(row.data);
    if (entityType === undefined || !data.ok) {
      this.#report({ table: 'entities', key, problem: entityType === undefined ? 'unknown entity type' : data.ok ? 'unreadable' : data.problem });
      return undefined;
    }
    return { entityType, entityId: row.entity_id, data: data.value, updatedAt: row.updated_at, syncId: row.sync_id, deleted: row.deleted !== 0 };
  }
}

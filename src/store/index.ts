/**
 * GatewayStore: the one interface that owns the gateway's SQLite (docs/architecture.md §The store). Nothing outside
 * src/store/ prepares SQL or holds a connection. `openStore()` returns named parts — entities, outbox, sync state,
 * conflicts, maintenance — for reads and the small writes they own, and the two write disciplines for programs of
 * the layers above (ingest's local updates, sync's delta pages and push results):
 *
 * - `durable(program, args)`: fsynced before the promise resolves — what a PUBACK (or any ack) waits for;
 * - `relaxed(program, args)`: committed without fsync — only for what can be redone after a power cut.
 *
 * Reads run on the caller's thread through a read-only connection; writes go through the store's one writer, in
 * submission order. Rows that cannot be read back are logged (rate-limited) and counted, never repaired silently.
 */
import { silentLogger, type Logger } from '../log.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { backupDatabase, type BackupResult } from './backup.js';
import { ConflictReads } from './conflict-reads.js';
import { openReadConnection, openWriteConnection, type Db } from './db.js';
import { listDeviceViews, type DeviceView } from './device-view.js';
import { createInlineWriter } from './inline-writer.js';
import { createWorkerWriter } from './worker-writer.js';
import { BUMP_ATTEMPTS, PRUNE_CONFLICTS, REBASE_PENDING, SET_STATE } from './programs.js';
import { StoreReads } from './reads.js';
import { CachedSyncState, FileSyncState, readSyncStatus, type SyncState, type SyncStatus } from './sync-state.js';
import type { ConflictEntry, CorruptRow, PendingChange, PendingFilter, StoredEntity } from './types.js';
import type { Discipline, StoreWriter, WriteProgram } from './writer.js';

export { storePath, STORE_FILE, STORE_PAGE_SIZE } from './db.js';
export { ClientSyncIds, isClientSyncId } from './sync-ids.js';
export { defineWriteProgram, StoreWriteError, type Discipline, type WriteProgram } from './writer.js';
export type { StoreTx } from './tx.js';
export type { DeviceView } from './device-view.js';
export type { BackupResult } from './backup.js';
export { MAX_CONFLICTS_READ } from './conflict-reads.js';
export type { SyncState, SyncStateEntries, SyncStatus, SyncStateKey, SyncStateValue, SyncMode, TokensState, LastError, LastResult, ServerProfileState } from './sync-state.js';
export type * from './types.js';

/** How the latest writes went (any program, sync-state write or probe): what the health check reads. */
export interface WriteHealth {
  /** Local epoch ms of the last committed write; null before the first. */
  readonly lastOkAt: number | null;
  /** The last failed write, if it failed after the last success; `what`: the program, or 'probe'. */
  readonly failing: { readonly at: number; readonly what: string; readonly code: string; readonly message: string } | null;
}

export interface StoreStats {
  /** Unreadable rows met, by table (entities, outbox, sync_state). */
  readonly corruptRows: Record<string, number>;
  /** Sync-state writes that failed (logged; the value stays in memory). */
  readonly stateWriteFailures: number;
  readonly writer: 'inline' | 'worker';
}

export interface EntitiesPart {
  get(entityType: string, entityId: string): StoredEntity | undefined;
  /** Every live entity (with `withDeleted`, tombstones too), ordered by type and id. */
  all(options?: { withDeleted?: boolean }): StoredEntity[];
  /** Devices with their current state (the `devices` command, status). */
  devices(): DeviceView[];
  /** These devices as the list shows them; `missing`: the ids with neither a device nor a state (deleted). */
  devicesOf(ids: readonly string[]): { devices: DeviceView[]; missing: string[] };
  /** Ids of the live devices. */
  deviceIds(): string[];
  /** Live entities of one type (e.g. the rooms), ordered by id. */
  ofType(entityType: string): StoredEntity[];
  deviceCount(): number;
  /** Whether a live device or device state with this id exists (what the device limits count). */
  deviceKnown(deviceId: string): boolean;
}

export interface OutboxReads {
  /** Up to `limit` pending changes, highest priority first (seed §Batching); reading writes nothing. */
  take(limit: number, only?: PendingFilter): PendingChange[];
  count(): number;
  summary(): { pending: number; oldestQueuedAt: number | null };
  /** `type/id` of every entity with a pending change (the convergence check leaves their buckets out). */
  pendingKeys(): Set<string>;
}

export interface OutboxPart extends OutboxReads {
  /** Counts a push of these versions that got no result (relaxed). */
  recordFailedAttempt(changes: readonly PendingChange[]): Promise<void>;
  /** Re-stamps pending changes by `deltaMicros` (clock step, docs/architecture.md §Time); returns the rows shifted. */
  rebase(deltaMicros: number): Promise<number>;
}

export interface ConflictsPart {
  count(): number;
  /** The latest entries with both versions, newest first (at most MAX_CONFLICTS_READ). */
  recent(limit: number): ConflictEntry[];
  /** Deletes conflict-log rows recorded before `beforeMs` (relaxed); returns how many. */
  prune(beforeMs: number): Promise<number>;
}

export interface MaintenancePart {
  /** WAL checkpoint (TRUNCATE) and PRAGMA optimize, on the write connection. */
  checkpoint(): Promise<unknown>;
  /** A small durable write (the health check's proof that the store takes writes). */
  probe(nowMs: number): Promise<void>;
  /** Pages in the file (× STORE_PAGE_SIZE = bytes). */
  pageCount(): number;
  /**
   * Write limits of the write connection: `readOnly` refuses every write (SQLITE_READONLY), `maxPages` caps the
   * file (SQLITE_FULL beyond; null lifts it). For tests that need a read-only or full disk, and for an operator who
   * must keep the store from filling the card.
   */
  setLimits(limits: { readOnly?: boolean; maxPages?: number | null }): Promise<void>;
}

/** The read side, also what the CLI opens while the daemon runs. */
export interface StoreReader {
  readonly path: string;
  readonly entities: EntitiesPart;
  readonly outbox: OutboxReads;
  readonly syncState: Pick<SyncState, 'get'>;
  readonly conflicts: Pick<ConflictsPart, 'count' | 'recent'>;
  status(nowMs?: number): SyncStatus;
  stats(): StoreStats;
  /**
   * An online, consistent copy of the store in `file` (SQLite's backup API on this read connection: safe while the
   * daemon writes), created 0600, checked, then renamed into place (store/backup.ts).
   */
  backup(file: string): Promise<BackupResult>;
  close(): void;
}

export interface GatewayStore extends StoreReader {
  readonly outbox: OutboxPart;
  readonly syncState: SyncState;
  readonly conflicts: ConflictsPart;
  readonly maintenance: MaintenancePart;
  durable<A, R>(program: WriteProgram<A, R>, args: A): Promise<R>;
  relaxed<A, R>(program: WriteProgram<A, R>, args: A): Promise<R>;
  /** Whether writes currently succeed (no side effect). */
  writeHealth(): WriteHealth;
  /** Resolves once every write submitted so far has committed or failed. */
  settled(): Promise<void>;
  /** Waits for queued writes, then closes the writer and the read connection. */
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Path of the database file. */
  readonly path: string;
  readonly logger: Logger;
  /** `FULL` (default) fsyncs every durable commit; `NORMAL` is for benchmarks' baselines only. */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Interval of the rate-limited warnings about unreadable rows and failed writes (default 60 s). */
  readonly logIntervalMs?: number;
  /** Local wall clock, epoch ms (write health). */
  readonly now?: () => number;
  /**
   * Where the writer runs: `worker` (default) on its own thread, so commits and their fsync never stop the event
   * loop; `inline` on the calling thread (one isolate less; each durable commit blocks the loop for its fsync).
   */
  readonly writer?: 'worker' | 'inline';
}

interface Diagnostics {
  readonly log: RateLimitedLog;
  readonly corrupt: (row: CorruptRow) => void;
}

function diagnostics(logger: Logger | undefined, intervalMs: number): Diagnostics {
  const log = new RateLimitedLog({ logger: (logger ?? silentLogger()).child({ module: 'store' }), intervalMs, level: 'warn' });
  return { log, corrupt: (row) => log.record(`corrupt_${row.table}`, 'unreadable row in the store (left as it is; counted)', { ...row }) };
}

function statsOf(log: RateLimitedLog, writer: 'inline' | 'worker'): StoreStats {
  const counts = log.counts();
  const corruptRows: Record<string, number> = {};
  for (const [reason, n] of Object.entries(counts)) if (reason.startsWith('corrupt_')) corruptRows[reason.slice('corrupt_'.length)] = n;
  return { corruptRows, stateWriteFailures: counts.state_write_failed ?? 0, writer };
}

function readParts(reads: StoreReads): { entities: EntitiesPart; outbox: OutboxReads } {
  return {
    entities: {
      get: (type, id) => reads.entity(type, id),
      all: (options) => reads.entities(options),
      devices: () => listDeviceViews(reads.devicesAndStates(), reads.pendingKeys()),
      devicesOf: (ids) => {
        const { entities, pending } = reads.devicesAndStatesOf(ids);
        const devices = listDeviceViews(entities, pending);
        const found = new Set(devices.map((d) => d.id));
        return { devices, missing: ids.filter((id) => !found.has(id)) };
      },
      deviceIds: () => reads.deviceIds(),
      ofType: (entityType) => reads.ofType(entityType),
      deviceCount: () => reads.countDevices(),
      deviceKnown: (deviceId) => reads.deviceKnown(deviceId),
    },
    outbox: {
      take: (limit, only) => reads.takePending(limit, only),
      count: () => reads.outboxSummary().pending,
      summary: () => reads.outboxSummary(),
      pendingKeys: () => reads.pendingKeys(),
    },
  };
}

/** Opens (creating and migrating when needed) the gateway store and starts its writer. */
export function openStore(options: OpenStoreOptions): GatewayStore {
  const connection = options.synchronous ? { synchronous: options.synchronous } : {};
  let writer: StoreWriter;
  if (options.writer === 'inline') {
    writer = createInlineWriter(options.path, connection);
  } else {
    // The file exists and has its schema before the read connection opens (the thread opens its own shortly after).
    openWriteConnection(options.path, connection).close();
    writer = createWorkerWriter(options.path, connection);
  }
  return assemble(options, writer, openReadConnection(options.path));
}

/** Tracks how writes go, for the health check. */
function writeTracker(now: () => number): { health: () => WriteHealth; track: <T>(what: string, p: Promise<T>) => Promise<T> } {
  let health: WriteHealth = { lastOkAt: null, failing: null };
  return {
    health: () => health,
    track: (what, p) =>
      p.then(
        (value) => {
          health = { lastOkAt: now(), failing: null };
          return value;
        },
        (err: unknown) => {
          const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : '';
          health = { ...health, failing: { at: now(), what, code, message: err instanceof Error ? err.message : String(err) } };
          throw err;
        },
      ),
  };
}

function assemble(options: OpenStoreOptions, writer: StoreWriter, readDb: Db): GatewayStore {
  const diag = diagnostics(options.logger, options.logIntervalMs ?? 60_000);
  const reads = new StoreReads(readDb, diag.corrupt);
  const conflictReads = new ConflictReads(readDb, diag.corrupt);
  const tracker = writeTracker(options.now ?? Date.now);
  let state: CachedSyncState | undefined;
  async function run<A, R>(program: WriteProgram<A, R>, args: A, discipline: Discipline): Promise<R> {
    const outcome = await tracker.track(program.name, writer.run(program, args, discipline));
    for (const row of outcome.corrupt) diag.corrupt(row);
    for (const [key, json] of outcome.stateWrites) state?.committed(key, json);
    return outcome.result;
  }
  const syncState = new CachedSyncState({
    rows: () => reads.allStateJson(),
    corrupt: diag.corrupt,
    write: (entries) =>
      tracker.track(SET_STATE.name, writer.run(SET_STATE, entries, 'relaxed')).then(
        () => undefined,
        (err: unknown) => diag.log.record('state_write_failed', 'sync state write failed (kept in memory)', { keys: entries.map(([k]) => k), err }),
      ),
  });
  state = syncState;
  const parts = readParts(reads);
  let closing: Promise<void> | undefined;
  const store: GatewayStore = {
    path: options.path,
    ...parts,
    syncState,
    outbox: {
      ...parts.outbox,
      recordFailedAttempt: (changes) =>
        run(BUMP_ATTEMPTS, changes.map((c) => ({ entityType: c.entityType, entityId: c.entityId, clientSyncId: c.clientSyncId })), 'relaxed'),
      rebase: (deltaMicros) => run(REBASE_PENDING, deltaMicros, 'relaxed'),
    },
    conflicts: {
      count: () => reads.conflictCount(),
      recent: (limit) => conflictReads.recent(limit),
      prune: (beforeMs) => run(PRUNE_CONFLICTS, beforeMs, 'relaxed'),
    },
    maintenance: {
      checkpoint: () => writer.maintain({ op: 'checkpoint' }),
      probe: async (nowMs) => {
        await tracker.track('probe', writer.run(SET_STATE, [['health_probe', JSON.stringify(nowMs)]], 'durable'));
      },
      pageCount: () => reads.pageCount(),
      setLimits: async (limits) => {
        await writer.maintain({ op: 'limits', ...limits });
      },
    },
    durable: (program, args) => run(program, args, 'durable'),
    relaxed: (program, args) => run(program, args, 'relaxed'),
    writeHealth: () => tracker.health(),
    settled: async () => {
      await writer.maintain({ op: 'barrier' });
    },
    status: (nowMs = Date.now()) => readSyncStatus(store, nowMs),
    stats: () => statsOf(diag.log, writer.kind),
    backup: (file) => backupDatabase(readDb, file),
    close: () => {
      closing ??= (async () => {
        await syncState.flush(); // remembered sync state (watermark of an idle pull, status rows) goes to the file
        await writer.maintain({ op: 'barrier' }); // every queued write first
        // The write connection closes last: the last connection of a WAL database checkpoints and removes the -wal.
        readDb.close();
        await writer.maintain({ op: 'close' });
        diag.log.flush();
      })();
      return closing;
    },
  };
  return store;
}

/** Opens an existing store read-only (never creates or migrates it): the CLI's `status` and `devices`. */
export function openStoreReader(path: string, logger?: Logger): StoreReader {
  const readDb = openReadConnection(path);
  const diag = diagnostics(logger, 60_000);
  const reads = new StoreReads(readDb, diag.corrupt);
  const conflictReads = new ConflictReads(readDb, diag.corrupt);
  const reader: StoreReader = {
    path,
    ...readParts(reads),
    syncState: new FileSyncState((key) => reads.stateJson(key), diag.corrupt),
    conflicts: { count: () => reads.conflictCount(), recent: (limit) => conflictReads.recent(limit) },
    status: (nowMs = Date.now()) => readSyncStatus(reader, nowMs),
    stats: () => statsOf(diag.log, 'inline'),
    backup: (file) => backupDatabase(readDb, file),
    close: () => {
      readDb.close();
      diag.log.flush();
    },
  };
  return reader;
}


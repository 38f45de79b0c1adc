/**
 * The gateway store's SQLite connections: file layout, pragmas, migrations. better-sqlite3 (its synchronous
 * transactions keep group commit simple). Only src/store/ opens connections: the writer owns the one write connection
 * (WAL, synchronous=FULL, so a durable commit is fsynced before it returns — docs/architecture.md §Durability),
 * readers open read-only ones.
 */
import Database from 'better-sqlite3';
import { dirname, join } from 'node:path';
import { assertPrivateFiles, createPrivateFile, ensurePrivateDir } from '../util/private-files.js';

export type Db = Database.Database;

export const STORE_FILE = 'gateway.db';

export function storePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}

/** Each entry runs once, in order, inside a transaction; `user_version` records how far a file has come. */
const MIGRATIONS: readonly string[] = [
  `
  -- One row per entity the gateway knows, of every type (room, device, entity_state). data is the wire data object
  -- without id / sync_id / updated_at, which are columns.
  CREATE TABLE entities (
    entity_type  TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,          -- epoch microseconds, server-corrected clock
    sync_id      TEXT,                      -- server_sync_id of the version held, null until the server has it
    deleted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (entity_type, entity_id)
  ) WITHOUT ROWID;

  -- The outbox: one pending change per entity, the latest wins. client_sync_id changes with every new local
  -- version, so a result for an older version (matched by client_sync_id) never clears a newer one.
  CREATE TABLE outbox (
    entity_type     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    client_sync_id  TEXT    NOT NULL,
    operation       TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL,
    priority        INTEGER NOT NULL,       -- seed §Batching: states (0) > devices (1) > rooms (2)
    critical        INTEGER NOT NULL DEFAULT 0,
    first_queued_at INTEGER NOT NULL,       -- epoch ms, local clock: age of the oldest pending change
    attempts        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (entity_type, entity_id)
  ) WITHOUT ROWID;
  -- No secondary index on the outbox: each would cost one more page write per ingest commit (docs/architecture.md
  -- §Disk writes). Results are matched by primary key plus client_sync_id; takePending sorts the (small) table.
  -- (Version 2 below moves the pending change into the entity row.)

  -- Every conflict the server reported, and every pulled change that met an unpushed local one.
  CREATE TABLE conflicts (
    id              INTEGER PRIMARY KEY,
    recorded_at     INTEGER NOT NULL,       -- epoch ms
    entity_type     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    resolution      TEXT    NOT NULL,
    server_version  TEXT,
    client_version  TEXT
  );

  -- Sync state (seed §Client State): watermark, clock offset, tokens, last result. Key/value, JSON values.
  CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- docs/architecture.md §Disk writes: the pending change of an entity lives in the entity's own row, so a local
  -- write, and a push result, rewrites one page instead of an entities page and an outbox page (half the bytes per
  -- state written to the SD card). The pending version is the entity's current local version (data, updated_at);
  -- pending_csid is its client_sync_id, NULL when nothing is pending.
  ALTER TABLE entities ADD COLUMN pending_csid TEXT;
  ALTER TABLE entities ADD COLUMN pending_op TEXT;
  ALTER TABLE entities ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE entities ADD COLUMN first_queued_at INTEGER;      -- epoch ms, local clock: age of the oldest pending change
  ALTER TABLE entities ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;

  -- An outbox row of an entity the gateway does not hold (made by hand) becomes an entity of its own.
  INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted)
    SELECT o.entity_type, o.entity_id, o.data, o.updated_at, NULL, o.operation = 'delete' FROM outbox o
    WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.entity_type = o.entity_type AND e.entity_id = o.entity_id);
  UPDATE entities SET (pending_csid, pending_op, critical, first_queued_at, attempts) =
    (SELECT o.client_sync_id, o.operation, o.critical, o.first_queued_at, o.attempts FROM outbox o
      WHERE o.entity_type = entities.entity_type AND o.entity_id = entities.entity_id)
    WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.entity_type = entities.entity_type AND o.entity_id = entities.entity_id);
  DROP TABLE outbox;

  -- The outbox as a relation still (the sqlite3 shell, older tools): one row per pending change, with the push-order
  -- priority (seed §Batching: states 0 > devices 1 > rooms 2). Inserting, updating and deleting through it works.
  CREATE VIEW outbox AS
    SELECT entity_type, entity_id, pending_csid AS client_sync_id, pending_op AS operation, data, updated_at,
           CASE entity_type WHEN 'entity_state' THEN 0 WHEN 'device' THEN 1 ELSE 2 END AS priority,
           critical, first_queued_at, attempts
    FROM entities WHERE pending_csid IS NOT NULL;
  CREATE TRIGGER outbox_insert INSTEAD OF INSERT ON outbox BEGIN
    INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id, deleted, pending_csid, pending_op, critical, first_queued_at, attempts)
      VALUES (NEW.entity_type, NEW.entity_id, NEW.data, NEW.updated_at, NULL, NEW.operation = 'delete', NEW.client_sync_id,
              NEW.operation, COALESCE(NEW.critical, 0), NEW.first_queued_at, COALESCE(NEW.attempts, 0))
      ON CONFLICT (entity_type, entity_id) DO UPDATE SET pending_csid = excluded.pending_csid, pending_op = excluded.pending_op,
        critical = excluded.critical, first_queued_at = excluded.first_queued_at, attempts = excluded.attempts,
        updated_at = excluded.updated_at;
  END;
  CREATE TRIGGER outbox_update INSTEAD OF UPDATE ON outbox BEGIN
    UPDATE entities SET pending_csid = NEW.client_sync_id, pending_op = NEW.operation, critical = NEW.critical,
      first_queued_at = NEW.first_queued_at, attempts = NEW.attempts, updated_at = NEW.updated_at, data = NEW.data
      WHERE entity_type = OLD.entity_type AND entity_id = OLD.entity_id;
  END;
  CREATE TRIGGER outbox_delete INSTEAD OF DELETE ON outbox BEGIN
    UPDATE entities SET pending_csid = NULL, pending_op = NULL, critical = 0, first_queued_at = NULL, attempts = 0
      WHERE entity_type = OLD.entity_type AND entity_id = OLD.entity_id;
  END;
  `,
  `
  -- Attribute-level state (docs/protocol.md, an extension): the names of the state attributes the pending change set
  -- or removed since the server's version, as a JSON array; NULL: the whole data (a creation, a device, a room, or a
  -- row written before this column). The push sends only these attributes.
  ALTER TABLE entities ADD COLUMN pending_attrs TEXT;
  `,
];

export const STORE_PAGE_SIZE = 1024;

export interface ConnectionOptions {
  /** `FULL` (default) fsyncs every commit; `NORMAL` is for benchmarks' baselines only. */
  readonly synchronous?: 'FULL' | 'NORMAL';
}

/** The store, its WAL and its shared-memory file: they hold the access and refresh tokens. */
export function storeFiles(path: string): string[] {
  return [path, `${path}-wal`, `${path}-shm`];
}

/**
 * Refuses a store another user could read (INSECURE_PERMISSIONS, with the chmod that fixes it): it holds the
 * gateway's access and refresh tokens.
 */
export function assertPrivateStore(path: string): void {
  assertPrivateFiles(storeFiles(path), { holds: 'the gateway\'s access and refresh tokens', forbidden: 0o077, fix: '600' });
}

/**
 * The write connection: creates the file (and its folder) if needed — the folder 0700 and the file 0600 whatever the
 * umask; SQLite gives the -wal and -shm files the database's mode — and brings its schema up to date. A store that
 * other users can read is refused.
 */
export function openWriteConnection(path: string, options: ConnectionOptions = {}): Db {
  if (path !== ':memory:') {
    ensurePrivateDir(dirname(path));
    createPrivateFile(path);
    assertPrivateStore(path);
  }
  const db = new Database(path);
  // 1 KiB pages: an ingest commit rewrites one entities page and one outbox page, so a smaller page is fewer bytes
  // written to the SD card per state (docs/architecture.md §Disk writes). Only takes effect on a new file.
  db.pragma(`page_size = ${STORE_PAGE_SIZE}`);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma('wal_autocheckpoint = 1000');
  migrate(db);
  return db;
}

/** A read-only connection to an existing store (never creates or migrates it); small page cache. */
export function openReadConnection(path: string): Db {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -512');
  return db;
}

function migrate(db: Db): void {
  const current = Number(db.pragma('user_version', { simple: true }));
  for (let version = current; version < MIGRATIONS.length; version += 1) {
    const sql = MIGRATIONS[version];
    if (sql === undefined) break;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/**
 * Runs `fn` in a transaction committed with synchronous=NORMAL (no fsync), then restores the connection's level —
 * the relaxed discipline (docs/architecture.md §Which commits are fsynced). Inside an enclosing transaction it just
 * runs `fn`: the enclosing commit decides durability. better-sqlite3 is synchronous, so nothing else can commit on
 * this connection between the two pragmas; the previous level is restored in a finally, also after a rollback.
 */
export function relaxedTransaction<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  const previous = Number(db.pragma('synchronous', { simple: true }));
  if (previous <= 1) return db.transaction(fn)(); // already OFF (0) or NORMAL (1): nothing to relax
  db.pragma('synchronous = NORMAL');
  try {
    return db.transaction(fn)();
  } finally {
    db.pragma(`synchronous = ${previous}`);
  }
}

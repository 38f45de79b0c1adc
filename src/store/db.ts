/**
 * The gateway's SQLite store: open, pragmas, migrations. better-sqlite3 (design.md §Dependencies) — synchronous
 * transactions make group commit simple. WAL with synchronous=FULL: a committed transaction is fsynced before the
 * commit returns, which is what lets the broker PUBACK only after commit (design.md §Durable ingest).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

export interface OpenStoreOptions {
  /** Path of the database file; `:memory:` only for unit tests that do not care about durability. */
  readonly path: string;
  /** `FULL` (default) fsyncs every commit; `NORMAL` is for benchmarks' baselines only. */
  readonly synchronous?: 'FULL' | 'NORMAL';
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

  -- design.md §Outbox: one pending change per entity, the latest wins. client_sync_id changes with every new local
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
];

export const STORE_PAGE_SIZE = 1024;

export function openStore(options: OpenStoreOptions): Db {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  const db = new Database(options.path);
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

export function migrate(db: Db): void {
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

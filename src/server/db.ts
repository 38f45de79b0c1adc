/**
 * The server's own SQLite file `<dataDir>/server.db` (separate from the gateway store): open, pragmas, migrations.
 * WAL with synchronous=FULL, so a 200 to a push means the push is on disk. The file holds client secrets (they key
 * the HMAC), so it is created with mode 0600 in a 0700 directory whatever the umask (SQLite gives its -wal and -shm
 * files the mode of the database file), and the server refuses to open it when it, its -wal or its -shm file can be
 * read or written by other users (util/private-files.ts).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { assertPrivateFiles, createPrivateFile, ensurePrivateDir } from '../util/private-files.js';

export type ServerDb = Database.Database;

export const SERVER_DB_FILE = 'server.db';

/** Each entry runs once, in order, inside a transaction; `user_version` records how far a file has come. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE homes (
    home_id          TEXT PRIMARY KEY,
    created_at       INTEGER NOT NULL,           -- epoch ms
    purged_through   INTEGER NOT NULL DEFAULT 0  -- max seq of a purged tombstone (µs watermark)
  ) WITHOUT ROWID;

  CREATE TABLE clients (
    client_id           TEXT PRIMARY KEY,
    secret              TEXT NOT NULL,           -- kept as-is: it keys the HMAC
    home_id             TEXT NOT NULL REFERENCES homes(home_id),
    created_at          INTEGER NOT NULL,        -- epoch ms
    last_ack_watermark  INTEGER,                 -- µs, the server_time of the last acknowledged sync
    last_ack_at         INTEGER                  -- epoch ms
  ) WITHOUT ROWID;
  CREATE INDEX clients_by_home ON clients (home_id);

  CREATE TABLE tokens (
    token_hash  TEXT PRIMARY KEY,               -- sha256 hex of the token; the token itself is never stored
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id   TEXT NOT NULL REFERENCES clients(client_id),
    expires_at  INTEGER NOT NULL                -- epoch ms
  ) WITHOUT ROWID;
  CREATE INDEX tokens_by_expiry ON tokens (expires_at);

  -- Each home is its own namespace: every query is scoped by the token's home.
  CREATE TABLE entities (
    home_id        TEXT    NOT NULL,
    entity_type    TEXT    NOT NULL,
    entity_id      TEXT    NOT NULL,
    data           TEXT    NOT NULL,            -- wire data minus id / sync_id / updated_at (JSON object)
    updated_at     INTEGER NOT NULL,            -- µs, the version's own timestamp (LWW)
    sync_id        TEXT    NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    seq            INTEGER NOT NULL,            -- commit sequence (docs/protocol.md §Watermark and delta), unique
    created_seq    INTEGER NOT NULL,
    priority       INTEGER NOT NULL,            -- seed §Batching: entity_state 0, device 1, room 2
    origin_client  TEXT,
    PRIMARY KEY (home_id, entity_type, entity_id)
  ) WITHOUT ROWID;
  CREATE INDEX entities_by_order ON entities (home_id, priority, seq);
  CREATE INDEX entities_tombstones ON entities (home_id, deleted, seq) WHERE deleted = 1;

  -- Idempotent push: the result of every client_sync_id a client pushed. The applied entry is rebuilt from the
  -- columns; detail holds {error?, conflict?} as JSON only when there is one.
  CREATE TABLE push_results (
    client_id       TEXT    NOT NULL,
    client_sync_id  TEXT    NOT NULL,
    status          TEXT    NOT NULL,           -- applied | conflict | rejected
    server_sync_id  TEXT,
    entity_type     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    detail          TEXT,
    applications    INTEGER NOT NULL,           -- how many times this change was written (must stay <= 1)
    recorded_at     INTEGER NOT NULL,           -- epoch ms
    PRIMARY KEY (client_id, client_sync_id)
  ) WITHOUT ROWID;
  CREATE INDEX push_results_by_age ON push_results (recorded_at);

  -- Conflicts recorded against a client's pushes, reported again on its next sync_delta (first page).
  CREATE TABLE conflicts (
    id         INTEGER PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    entry      TEXT    NOT NULL                 -- JSON conflict entry as on the wire
  );
  CREATE INDEX conflicts_by_client ON conflicts (client_id, seq);

  CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
  ) WITHOUT ROWID;
  `,
  // 2: per-home issued watermarks (watermarks.ts), seeded with the old global floor, which bounded everything issued;
  // token families, so a refresh revokes the access token issued with the refresh token it rotates.
  `
  ALTER TABLE homes ADD COLUMN issued_through INTEGER NOT NULL DEFAULT 0;   -- µs, highest server_time issued to the home
  UPDATE homes SET issued_through = coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'floor'), 0);
  ALTER TABLE tokens ADD COLUMN family TEXT;                               -- the pair (access + refresh) issued together
  CREATE INDEX tokens_by_family ON tokens (family) WHERE family IS NOT NULL;
  `,
  // 3: attribute-level state, the clamp, sync history and the convergence digest (docs/protocol.md, extensions).
  // bucket = -1 marks rows written before: ServerStore fills bucket and hash in (digests.ts) when it opens the file.
  `
  ALTER TABLE entities ADD COLUMN attrs TEXT;                              -- entity_state: per-attribute versions (protocol/attributes.ts)
  ALTER TABLE entities ADD COLUMN foreign_seq INTEGER NOT NULL DEFAULT 0;  -- highest seq of an attribute not written by origin_client
  ALTER TABLE entities ADD COLUMN claimed_at INTEGER;                      -- µs, the claimed updated_at when the clamp moved it
  ALTER TABLE entities ADD COLUMN bucket INTEGER NOT NULL DEFAULT -1;      -- digest bucket (protocol/digest.ts)
  ALTER TABLE entities ADD COLUMN hash TEXT;                               -- entity hash, 16 hex digits; NULL for a tombstone

  CREATE TABLE home_digests (
    home_id  TEXT    NOT NULL,
    bucket   INTEGER NOT NULL,
    sum      TEXT    NOT NULL,                                             -- 16 hex digits, sum of hashes mod 2^64
    PRIMARY KEY (home_id, bucket)
  ) WITHOUT ROWID;

  -- Sync history: versions that lost a resolution or were overwritten (docs/protocol.md §Sync history).
  CREATE TABLE history (
    id           INTEGER PRIMARY KEY,
    home_id      TEXT    NOT NULL,
    entity_type  TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,                                         -- epoch ms
    why          TEXT    NOT NULL CHECK (why IN ('lost', 'overwritten')),
    reason       TEXT    NOT NULL,
    operation    TEXT    NOT NULL,
    data         TEXT    NOT NULL,                                         -- JSON object, as the version had it
    attributes   TEXT,                                                     -- JSON array of names (attribute-level entries)
    updated_at   INTEGER NOT NULL,                                         -- µs, ordering time
    claimed_at   INTEGER,                                                  -- µs, when clamped
    sync_id      TEXT    NOT NULL,
    written_by   TEXT,
    decided_by   TEXT
  );
  CREATE INDEX history_by_entity ON history (home_id, entity_type, entity_id, id);
  CREATE INDEX history_by_age ON history (recorded_at);
  `,
];

export function openServerDb(dataDir: string): ServerDb {
  ensurePrivateDir(dataDir);
  const path = join(dataDir, SERVER_DB_FILE);
  assertPrivateFiles([path, `${path}-wal`, `${path}-shm`], {
    holds: 'client secrets',
    forbidden: 0o077,
    fix: '600',
    afterwards: 'check who could have read it and consider replacing the client secrets (server add-client)',
  });
  createPrivateFile(path);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

function migrate(db: ServerDb): void {
  const current = Number(db.pragma('user_version', { simple: true }));
  for (let version = current; version < MIGRATIONS.length; version++) {
    const sql = MIGRATIONS[version];
    if (sql === undefined) break;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/**
 * Runs `fn` in a transaction committed WITHOUT fsync (synchronous=NORMAL for this commit only), for writes whose
 * loss on power failure is harmless: acks (a lost ack only delays a tombstone purge), the watermark hint, tokens
 * (a lost token means the client authenticates again). The next FULL commit fsyncs the WAL, these frames included.
 * Pushes never use it: their 200 means "on disk".
 */
export function relaxedWrite<T>(db: ServerDb, fn: () => T): T {
  if (db.inTransaction) return fn(); // part of an enclosing transaction: its commit decides
  db.pragma('synchronous = NORMAL');
  try {
    return db.transaction(fn)();
  } finally {
    db.pragma('synchronous = FULL');
  }
}

/**
 * The PostgreSQL schema of the sync server, as numbered migrations (the same tables as the SQLite file, plus what
 * several instances share: nonces, job leases). Each entry runs once, in order, in its own transaction;
 * `ib_schema_version` records how far a database has come. docs/operations.md §PostgreSQL.
 *
 * Values that are µs or ms timestamps are bigint (they stay below 2^53, so they read back as exact JS numbers).
 * `data` and conflict entries are stored as JSON text, not jsonb: the server splices the text into its answers as
 * it was pushed (key order and number spelling kept), as it does on SQLite.
 */

/** Each entry runs once, in order, in one transaction. Never edit an entry once released: add one. */
export const PG_MIGRATIONS: readonly string[] = [
  `
  -- The database's clock in µs: every seq and watermark comes from it, never from an instance's clock, so instances
  -- whose clocks differ still hand out one order (docs/protocol.md §Watermark across instances).
  CREATE FUNCTION ib_now_us() RETURNS bigint LANGUAGE sql VOLATILE PARALLEL SAFE AS
    $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint $$;

  CREATE TABLE homes (
    home_id         text PRIMARY KEY,
    created_at      bigint NOT NULL,              -- epoch ms
    purged_through  bigint NOT NULL DEFAULT 0,    -- max seq of a purged tombstone (µs)
    -- The home's clock (µs): the highest seq written in the home and the highest watermark issued to it. Moved only
    -- under this row's lock, by the server's own commits and issues; it bounds every watermark a client presents.
    clock           bigint NOT NULL DEFAULT 0
  );

  CREATE TABLE clients (
    client_id           text PRIMARY KEY,
    secret              text NOT NULL,             -- kept as-is: it keys the HMAC
    home_id             text NOT NULL REFERENCES homes(home_id),
    created_at          bigint NOT NULL,           -- epoch ms
    last_ack_watermark  bigint,                    -- µs, the server_time of the last acknowledged sync
    last_ack_at         bigint                     -- epoch ms
  );
  CREATE INDEX clients_by_home ON clients (home_id);

  CREATE TABLE tokens (
    token_hash  text PRIMARY KEY,                  -- sha256 hex of the token; the token itself is never stored
    kind        text NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id   text NOT NULL REFERENCES clients(client_id),
    expires_at  bigint NOT NULL,                   -- epoch ms
    family      text                               -- the pair (access + refresh) issued together
  );
  CREATE INDEX tokens_by_expiry ON tokens (expires_at);
  CREATE INDEX tokens_by_family ON tokens (family) WHERE family IS NOT NULL;

  CREATE TABLE entities (
    home_id        text     NOT NULL,
    entity_type    text     NOT NULL,
    entity_id      text     NOT NULL,
    data           text     NOT NULL,              -- wire data minus id / sync_id / updated_at (JSON object text)
    updated_at     bigint   NOT NULL,              -- µs, the version's own timestamp (LWW)
    sync_id        text     NOT NULL,
    deleted        boolean  NOT NULL DEFAULT false,
    seq            bigint   NOT NULL,              -- commit sequence, unique within the home
    created_seq    bigint   NOT NULL,
    priority       smallint NOT NULL,              -- entity_state 0, device 1, room 2
    origin_client  text,
    PRIMARY KEY (home_id, entity_type, entity_id)
  );
  CREATE INDEX entities_by_order ON entities (home_id, priority, seq);
  CREATE INDEX entities_tombstones ON entities (home_id, seq) WHERE deleted;

  CREATE TABLE push_results (
    client_id       text    NOT NULL,
    client_sync_id  text    NOT NULL,
    status          text    NOT NULL CHECK (status IN ('applied', 'conflict', 'rejected')),
    server_sync_id  text,
    entity_type     text    NOT NULL,
    entity_id       text    NOT NULL,
    detail          text,                          -- {error?, conflict?} as JSON, only when there is one
    applications    integer NOT NULL,              -- how many times this change was written (must stay <= 1)
    recorded_at     bigint  NOT NULL,              -- epoch ms
    PRIMARY KEY (client_id, client_sync_id)
  );
  CREATE INDEX push_results_by_age ON push_results (recorded_at);

  CREATE TABLE conflicts (
    id         bigserial PRIMARY KEY,
    client_id  text   NOT NULL,
    seq        bigint NOT NULL,
    entry      text   NOT NULL                     -- JSON conflict entry as on the wire
  );
  CREATE INDEX conflicts_by_client ON conflicts (client_id, seq);
  CREATE INDEX conflicts_by_seq ON conflicts (seq);

  CREATE TABLE meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
  );

  -- Nonces of signed requests, shared by every instance: a nonce used on one is a replay on all. UNLOGGED: no WAL,
  -- no fsync per request; a crash of the database empties it (docs/protocol.md §Several instances argues the bound).
  CREATE UNLOGGED TABLE nonces (
    client_id  text   NOT NULL,
    nonce      text   NOT NULL,
    ts         bigint NOT NULL,                    -- the request's timestamp (s)
    PRIMARY KEY (client_id, nonce)
  );
  CREATE INDEX nonces_by_ts ON nonces (ts);

  -- Opening a sync of a home (docs/protocol.md §Watermark across instances): under the home row's lock, which every
  -- push of the home holds until it commits, the presented last_sync \`w\` is checked against the home's clock and
  -- purge horizon, then H = max(clock, now) is issued and recorded as the clock. Every push that locked the row before
  -- has committed (its rows are visible to the next statement); every push that locks it after gets seqs above H.
  -- The record of H is committed without waiting for the WAL flush: the next durable commit of any transaction
  -- flushes it, and losing it in a crash only makes a client that holds H resync in full (argued in the docs).
  CREATE FUNCTION ib_open_sync(p_home text, p_w bigint, OUT status text, OUT h bigint) LANGUAGE plpgsql AS $$
  DECLARE
    v_clock bigint;
    v_purged bigint;
  BEGIN
    SELECT clock, purged_through INTO v_clock, v_purged FROM homes WHERE home_id = p_home FOR NO KEY UPDATE;
    IF NOT FOUND THEN
      status := 'no_home';
      RETURN;
    END IF;
    IF p_w IS NOT NULL AND p_w > v_clock THEN
      status := 'future_watermark';
      RETURN;
    END IF;
    IF p_w IS NOT NULL AND p_w < v_purged THEN
      status := 'purged';
      RETURN;
    END IF;
    h := greatest(v_clock, ib_now_us());
    IF h > v_clock THEN
      PERFORM set_config('synchronous_commit', 'off', true);
      UPDATE homes SET clock = h WHERE home_id = p_home;
    END IF;
    status := 'ok';
  END $$;

  -- Scheduled jobs: the last run of each, so a job runs once per interval across all instances.
  CREATE TABLE job_runs (
    job      text PRIMARY KEY,
    last_at  bigint NOT NULL                       -- epoch ms (database clock)
  );
  `,
  // 2: attribute-level state, the clamp, sync history and the convergence digest (docs/protocol.md, extensions).
  // bucket = -1 marks rows written before: the store fills bucket and hash in when it opens (pg/digests.ts).
  `
  ALTER TABLE entities
    ADD COLUMN attrs       text,                   -- entity_state: per-attribute versions (protocol/attributes.ts)
    ADD COLUMN foreign_seq bigint   NOT NULL DEFAULT 0,  -- highest seq of an attribute not written by origin_client
    ADD COLUMN claimed_at  bigint,                 -- µs, the claimed updated_at when the clamp moved it
    ADD COLUMN bucket      smallint NOT NULL DEFAULT -1, -- digest bucket (protocol/digest.ts)
    ADD COLUMN hash        text;                   -- entity hash, 16 hex digits; NULL for a tombstone
  CREATE INDEX entities_unhashed ON entities (home_id) WHERE bucket = -1;

  -- Per home and bucket, the sum modulo 2^64 of the live entities' hashes (numeric: added in SQL by each push).
  CREATE TABLE home_digests (
    home_id  text     NOT NULL,
    bucket   smallint NOT NULL,
    sum      numeric  NOT NULL,
    PRIMARY KEY (home_id, bucket)
  );

  -- Sync history: versions that lost a resolution or were overwritten (docs/protocol.md §Sync history).
  CREATE TABLE history (
    id           bigserial PRIMARY KEY,
    home_id      text    NOT NULL,
    entity_type  text    NOT NULL,
    entity_id    text    NOT NULL,
    recorded_at  bigint  NOT NULL,                 -- epoch ms
    why          text    NOT NULL CHECK (why IN ('lost', 'overwritten')),
    reason       text    NOT NULL,
    operation    text    NOT NULL,
    data         text    NOT NULL,                 -- JSON object text, as the version had it
    attributes   text,                             -- JSON array of names (attribute-level entries)
    updated_at   bigint  NOT NULL,                 -- µs, ordering time
    claimed_at   bigint,                           -- µs, when clamped
    sync_id      text    NOT NULL,
    written_by   text,
    decided_by   text
  );
  CREATE INDEX history_by_entity ON history (home_id, entity_type, entity_id, id);
  CREATE INDEX history_by_age ON history (recorded_at);
  `,
];

/** The newest schema this build knows. */
export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;

/** Advisory lock keys (one namespace for this application: 0x1B5E). */
export const ADVISORY = {
  migrate: 0x1b5e_0001,
  jobs: 0x1b5e_0002,
} as const;

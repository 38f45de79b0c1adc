import type pg from 'pg';

/**
 * Every SQL statement of the PostgreSQL store, by operation (the store modules run them; nothing else holds SQL).
 * `$n` parameters; arrays are passed whole and unnested, so a push of 1000 changes is a handful of statements.
 */

/** Prefix of a single-statement write whose commit need not wait for the WAL flush (acks, tokens, watermarks). */
const RELAXED = `WITH relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS v)`;

export const SQL = {
  // accounts
  addClient: `
    WITH home AS (INSERT INTO homes (home_id, created_at) VALUES ($3, $4) ON CONFLICT (home_id) DO NOTHING)
    INSERT INTO clients (client_id, secret, home_id, created_at) VALUES ($1, $2, $3, $4)`,
  getClient: 'SELECT client_id, secret, home_id, last_ack_watermark, last_ack_at FROM clients WHERE client_id = $1',
  insertTokens: `${RELAXED}
    INSERT INTO tokens (token_hash, kind, client_id, expires_at, family)
    SELECT t.h, t.k, $3, t.e, $6
    FROM relaxed, (VALUES ($1::text, 'access', $4::bigint), ($2::text, 'refresh', $5::bigint)) AS t(h, k, e)`,
  lookupToken: `
    SELECT t.kind, t.expires_at, c.client_id, c.secret, c.home_id, c.last_ack_watermark, c.last_ack_at
    FROM tokens t JOIN clients c ON c.client_id = t.client_id WHERE t.token_hash = $1`,
  /** Single use across instances: only the one DELETE that finds the row may rotate it. */
  consumeRefresh: "DELETE FROM tokens WHERE token_hash = $1 AND kind = 'refresh' AND client_id = $2 RETURNING family",
  deleteFamily: 'DELETE FROM tokens WHERE family = $1',
  recordAck: `${RELAXED} UPDATE clients SET last_ack_watermark = $2, last_ack_at = $3 FROM relaxed WHERE client_id = $1`,
  acceptNonce: 'INSERT INTO nonces (client_id, nonce, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',

  // watermarks
  openSync: 'SELECT status, h FROM ib_open_sync($1, $2)',
  homeClock: 'SELECT clock AS value FROM homes WHERE home_id = $1',
  now: 'SELECT ib_now_us() AS value',

  // delta: one statement, one snapshot — the rows and the purge horizon they are checked against
  page: `
    SELECT h.purged_through, r.entity_type, r.entity_id, r.data, r.updated_at, r.sync_id, r.deleted, r.seq, r.created_seq, r.priority,
      r.attrs, r.claimed_at
    FROM homes h LEFT JOIN LATERAL (
      SELECT * FROM (
        (SELECT entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, attrs, claimed_at FROM entities
          WHERE home_id = $1 AND priority = 0 AND $2::bigint IS NOT NULL AND seq > $2 AND seq <= $5
            AND ($6 OR NOT deleted) AND ($7::text IS NULL OR origin_client IS DISTINCT FROM $7 OR foreign_seq > $9)
            AND ($10::smallint[] IS NULL OR bucket = ANY($10))
          ORDER BY seq LIMIT $8)
        UNION ALL
        (SELECT entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, attrs, claimed_at FROM entities
          WHERE home_id = $1 AND priority = 1 AND $3::bigint IS NOT NULL AND seq > $3 AND seq <= $5
            AND ($6 OR NOT deleted) AND ($7::text IS NULL OR origin_client IS DISTINCT FROM $7 OR foreign_seq > $9)
            AND ($10::smallint[] IS NULL OR bucket = ANY($10))
          ORDER BY seq LIMIT $8)
        UNION ALL
        (SELECT entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, attrs, claimed_at FROM entities
          WHERE home_id = $1 AND priority = 2 AND $4::bigint IS NOT NULL AND seq > $4 AND seq <= $5
            AND ($6 OR NOT deleted) AND ($7::text IS NULL OR origin_client IS DISTINCT FROM $7 OR foreign_seq > $9)
            AND ($10::smallint[] IS NULL OR bucket = ANY($10))
          ORDER BY seq LIMIT $8)
      ) AS u ORDER BY priority, seq LIMIT $8
    ) AS r ON true
    WHERE h.home_id = $1`,
  conflicts: 'SELECT entry FROM conflicts WHERE client_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq DESC LIMIT $4',
  /** The home's digest sums (read with the first page, under the home's lock: the digest as of H). */
  digest: 'SELECT bucket, sum::text AS sum FROM home_digests WHERE home_id = $1',
  history: `
    SELECT id, entity_type, entity_id, recorded_at, why, reason, operation, data, attributes, updated_at, claimed_at,
      sync_id, written_by, decided_by
    FROM history WHERE home_id = $1 AND entity_type = $2 AND entity_id = $3 AND id < $4 ORDER BY id DESC LIMIT $5`,

  // push: the home's row lock orders the pushes of a home and the watermarks issued to it
  lockHome: 'SELECT clock, ib_now_us() AS now FROM homes WHERE home_id = $1 FOR NO KEY UPDATE',
  // LATERAL … LIMIT 1 keeps the pushed keys as the outer loop, one primary-key lookup each, whatever the
  // statistics say (a hash join would read the whole table on every push).
  priorResults: `
    SELECT r.client_sync_id, r.status, r.server_sync_id, r.entity_type, r.entity_id, r.detail
    FROM unnest($2::text[]) AS k(id) CROSS JOIN LATERAL (
      SELECT * FROM push_results WHERE client_id = $1 AND client_sync_id = k.id LIMIT 1
    ) AS r`,
  storedVersions: `
    SELECT e.entity_type, e.entity_id, e.data, e.updated_at, e.sync_id, e.deleted, e.seq, e.created_seq, e.origin_client,
      e.attrs, e.foreign_seq, e.claimed_at, e.hash
    FROM unnest($2::text[], $3::text[]) AS k(t, i) CROSS JOIN LATERAL (
      SELECT * FROM entities WHERE home_id = $1 AND entity_type = k.t AND entity_id = k.i LIMIT 1
    ) AS e`,
  /** A push's plan (store/plan.ts) in one statement: entities, results, conflicts, history, digest sums, the clock. */
  writePush: `
    WITH written AS (
      INSERT INTO entities (home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority,
                            origin_client, attrs, foreign_seq, claimed_at, bucket, hash)
      SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::boolean[], $8::bigint[],
                                $9::bigint[], $10::smallint[], $11::text[], $12::text[], $13::bigint[], $14::bigint[],
                                $15::smallint[], $16::text[])
      ON CONFLICT (home_id, entity_type, entity_id) DO UPDATE SET
        data = excluded.data, updated_at = excluded.updated_at, sync_id = excluded.sync_id, deleted = excluded.deleted,
        seq = excluded.seq, created_seq = excluded.created_seq, origin_client = excluded.origin_client,
        attrs = excluded.attrs, foreign_seq = excluded.foreign_seq, claimed_at = excluded.claimed_at,
        bucket = excluded.bucket, hash = excluded.hash
    ), results AS (
      INSERT INTO push_results (client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at)
      SELECT $17, r.*, $25 FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::integer[]) AS r
      ON CONFLICT (client_id, client_sync_id) DO UPDATE SET applications = push_results.applications + excluded.applications
    ), conflicts AS (
      INSERT INTO conflicts (client_id, seq, entry) SELECT $17, * FROM unnest($26::bigint[], $27::text[])
    ), history_rows AS (
      INSERT INTO history (home_id, recorded_at, entity_type, entity_id, why, reason, operation, data, attributes, updated_at,
                           claimed_at, sync_id, written_by, decided_by)
      SELECT $1, $25, * FROM unnest($29::text[], $30::text[], $31::text[], $32::text[], $33::text[], $34::text[], $35::text[],
                                    $36::bigint[], $37::bigint[], $38::text[], $39::text[], $40::text[])
    ), digest AS (
      INSERT INTO home_digests (home_id, bucket, sum) SELECT $1, * FROM unnest($41::smallint[], $42::numeric[])
      ON CONFLICT (home_id, bucket) DO UPDATE SET sum = mod(home_digests.sum + excluded.sum, 18446744073709551616)
    )
    UPDATE homes SET clock = greatest(clock, $28) WHERE home_id = $1`,
  notify: "SELECT pg_notify('ib_changes', $1)",

  // maintenance (once across instances: an advisory lock and the job's last run)
  tryJobLock: 'SELECT pg_try_advisory_xact_lock($1) AS locked',
  jobLastRun: 'SELECT last_at AS value FROM job_runs WHERE job = $1',
  jobRan: `INSERT INTO job_runs (job, last_at) VALUES ($1, $2) ON CONFLICT (job) DO UPDATE SET last_at = excluded.last_at`,
  purgeTombstones: `
    WITH cut AS (
      SELECT h.home_id, greatest(coalesce(min(coalesce(c.last_ack_watermark, 0)), 0), $1::bigint) AS cutoff
      FROM homes h LEFT JOIN clients c ON c.home_id = h.home_id GROUP BY h.home_id
    ), gone AS (
      DELETE FROM entities e USING cut WHERE e.home_id = cut.home_id AND e.deleted AND e.seq <= cut.cutoff
      RETURNING e.home_id, e.seq
    ), tops AS (SELECT home_id, max(seq) AS top, count(*) AS n FROM gone GROUP BY home_id),
    marked AS (UPDATE homes SET purged_through = greatest(purged_through, tops.top) FROM tops WHERE homes.home_id = tops.home_id)
    SELECT coalesce(sum(n), 0)::bigint AS n FROM tops`,
  purgeResults: 'WITH gone AS (DELETE FROM push_results WHERE recorded_at < $1 RETURNING 1) SELECT count(*)::bigint AS n FROM gone',
  purgeConflicts: 'WITH gone AS (DELETE FROM conflicts WHERE seq < $1 RETURNING 1) SELECT count(*)::bigint AS n FROM gone',
  purgeTokens: 'WITH gone AS (DELETE FROM tokens WHERE expires_at < $1 RETURNING 1) SELECT count(*)::bigint AS n FROM gone',
  purgeNonces: 'WITH gone AS (DELETE FROM nonces WHERE ts < $1 RETURNING 1) SELECT count(*)::bigint AS n FROM gone',
  purgeHistory: `
    WITH old AS (DELETE FROM history WHERE recorded_at < $1 RETURNING id),
    ranked AS (
      SELECT id, row_number() OVER (PARTITION BY home_id, entity_type, entity_id ORDER BY id DESC) AS n FROM history
    ), capped AS (DELETE FROM history WHERE recorded_at >= $1 AND id IN (SELECT id FROM ranked WHERE n > $2) RETURNING id)
    SELECT ((SELECT count(*) FROM old) + (SELECT count(*) FROM capped))::bigint AS n`,

  // digest columns of rows written before the digest existed (pg/digests.ts)
  unhashed: 'SELECT home_id, entity_type, entity_id, data, deleted FROM entities WHERE bucket = -1 LIMIT 1000 FOR UPDATE',
  fillHash: `
    UPDATE entities e SET bucket = f.b, hash = f.h FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[])
      AS f(home, t, i, b, h) WHERE e.home_id = f.home AND e.entity_type = f.t AND e.entity_id = f.i`,
  lockHomeOnly: 'SELECT 1 FROM homes WHERE home_id = $1 FOR NO KEY UPDATE',
  homeHashes: 'SELECT bucket, hash FROM entities WHERE home_id = $1 AND NOT deleted AND hash IS NOT NULL',
  clearDigest: 'DELETE FROM home_digests WHERE home_id = $1',
  putDigest: 'INSERT INTO home_digests (home_id, bucket, sum) SELECT $1, * FROM unnest($2::smallint[], $3::numeric[])',

  // meta and tools
  ensureCursorKey: "INSERT INTO meta (key, value) VALUES ('cursor_key', $1) ON CONFLICT (key) DO NOTHING",
  cursorKey: "SELECT value FROM meta WHERE key = 'cursor_key'",
  entities: `
    SELECT entity_type, entity_id, data, updated_at, sync_id, deleted, created_seq, origin_client, seq, priority
    FROM entities WHERE home_id = $1 ORDER BY priority, seq`,
  applications: 'SELECT applications AS value FROM push_results WHERE client_id = $1 AND client_sync_id = $2',
} as const;

export type SqlName = keyof typeof SQL;

/** Something that runs queries: the pool (one statement, any connection) or a connection inside a transaction. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/** Runs a statement of SQL as a named prepared statement (parsed and planned once per connection). */
export function runSql(db: Queryable, name: SqlName, values: unknown[] = []): Promise<pg.QueryResult> {
  return db.query({ name: `ib-${name}`, text: SQL[name], values });
}

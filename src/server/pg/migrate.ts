/**
 * Schema migrations on PostgreSQL (`inbetweenies-gateway server migrate --database-url …`, and every server start).
 * Idempotent: under a session advisory lock (several instances starting at once migrate one at a time, the later
 * ones find nothing to do), each pending migration in its own transaction with its version row. A database whose
 * schema is newer than this build knows is refused (SCHEMA_TOO_NEW): an older server must not write into tables it
 * does not understand.
 */
import type pg from 'pg';
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import { ADVISORY, PG_MIGRATIONS } from './schema.js';

export interface MigrationReport {
  /** Version before. */
  readonly from: number;
  /** Version after (the build's). */
  readonly to: number;
  readonly applied: number;
}

export class SchemaTooNewError extends GatewayError {
  readonly found: number;
  readonly known: number;
  constructor(found: number, known: number) {
    super(
      'STORE',
      `the database schema is version ${found}, newer than this server knows (${known}): upgrade the server, do not run an older one against it`,
    );
    this.found = found;
    this.known = known;
  }
}

const VersionRow = z.object({ version: z.number().int().nonnegative().nullable() });

/** The schema version of the database (0: empty). */
export async function schemaVersion(client: pg.ClientBase): Promise<number> {
  const exists = await client.query("SELECT to_regclass('ib_schema_version') IS NOT NULL AS present");
  if (exists.rows[0]?.present !== true) return 0;
  const res = await client.query('SELECT max(version) AS version FROM ib_schema_version');
  return VersionRow.parse(res.rows[0] ?? { version: null }).version ?? 0;
}

/**
 * Brings the database to this build's schema; refuses a newer one. With `apply: false` it only checks, and refuses
 * an older schema too (the operator runs `server migrate` first).
 */
export async function migratePg(
  client: pg.ClientBase,
  migrations: readonly string[] = PG_MIGRATIONS,
  options: { apply?: boolean } = {},
): Promise<MigrationReport> {
  await client.query('SELECT pg_advisory_lock($1)', [ADVISORY.migrate]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS ib_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const from = await schemaVersion(client);
    if (from > migrations.length) throw new SchemaTooNewError(from, migrations.length);
    if (options.apply === false && from < migrations.length) {
      throw new GatewayError(
        'STORE',
        `the database schema is version ${from}, this server needs ${migrations.length}: run \`inbetweenies-gateway server migrate --database-url …\``,
      );
    }
    for (let version = from; version < migrations.length; version++) {
      const sql = migrations[version];
      if (sql === undefined) break;
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query('INSERT INTO ib_schema_version (version) VALUES ($1)', [version + 1]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new GatewayError('STORE', `migration ${version + 1} failed: ${(err as Error).message}`, { cause: err });
      }
    }
    return { from, to: migrations.length, applied: migrations.length - from };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [ADVISORY.migrate]);
  }
}

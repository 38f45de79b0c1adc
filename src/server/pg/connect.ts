/**
 * Connecting to PostgreSQL (node-postgres): a pool per server instance with bigint columns read as exact JS numbers
 * (every bigint the server stores is a µs/ms timestamp or a count below 2^53; a larger one is refused, never rounded)
 * and the URL checked before anything connects.
 */
import pg from 'pg';
import { GatewayError } from '../../errors.js';

const INT8_OID = 20;

/** int8 → number, refusing what a JS number cannot hold exactly. */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new GatewayError('STORE', `bigint ${text} is beyond 2^53: not a value this server writes`);
  return n;
}

const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** Checks that `url` is a postgres:// or postgresql:// URL; says what was given otherwise (without its password). */
export function checkDatabaseUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new GatewayError('CONFIG_INVALID', 'database url: expected postgres://user:password@host:port/database, got something that is not a URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new GatewayError('CONFIG_INVALID', `database url: expected the postgres:// or postgresql:// scheme, got ${parsed.protocol}`);
  }
}

/** The URL with its password masked, for logs and messages. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable url)';
  }
}

export interface PgPoolOptions {
  readonly url: string;
  /** Connections in this instance's pool (default 10). */
  readonly max?: number;
  readonly applicationName?: string;
}

export function createPgPool(options: PgPoolOptions): pg.Pool {
  checkDatabaseUrl(options.url);
  return new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'inbetweenies-server',
    types,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
}

/** A single connection with the same settings (LISTEN, migrations, export). */
export function createPgClient(options: PgPoolOptions): pg.Client {
  checkDatabaseUrl(options.url);
  return new pg.Client({
    connectionString: options.url,
    application_name: options.applicationName ?? 'inbetweenies-server',
    types,
    connectionTimeoutMillis: 10_000,
  });
}

/**
 * Runs `fn` in a transaction on a pooled connection: COMMIT when it resolves, ROLLBACK when it throws. A connection
 * whose ROLLBACK fails (it broke) is destroyed, not returned to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    try {
      const value = await fn(client);
      await client.query('COMMIT');
      return value;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      throw err;
    }
  } finally {
    client.release(broken);
  }
}

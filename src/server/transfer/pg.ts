/**
 * Export from and import into PostgreSQL (transfer/format.ts). The export reads one consistent snapshot
 * (REPEATABLE READ, read only) in keyset batches, so it may run while instances serve; the import fills an empty
 * database (migrated first) in one transaction: all of the dump or nothing.
 */
import type pg from 'pg';
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import { ENTITY_PRIORITY } from '../../protocol/index.js';
import { createPgClient } from '../pg/connect.js';
import { migratePg } from '../pg/migrate.js';
import { rowsOf } from '../pg/rows.js';
import { DumpWriter, HISTORY_COLUMNS, ROWS, readDump, type DumpCounts, type DumpRecord } from './format.js';

const BATCH = 5000;
const Int = z.number().int();

/** Reads a table in primary-key order, BATCH rows a query; `sql` takes the last key seen as $1.. (nulls: from the start). */
async function exportKeyed<R extends Record<string, unknown>>(
  client: pg.ClientBase,
  sql: string,
  schema: z.ZodType<R>,
  keyOf: (row: R) => unknown[],
  emit: (row: R) => Promise<void>,
): Promise<void> {
  let last: unknown[] | null = null;
  for (;;) {
    const params: unknown[] = last ?? Array.from({ length: new Set(sql.match(/\$\d+/g)).size }, () => null);
    const rows = rowsOf(schema, (await client.query(sql, params)).rows, 'export');
    for (const row of rows) await emit(row);
    const tail = rows[rows.length - 1];
    if (rows.length < BATCH || tail === undefined) return;
    last = keyOf(tail);
  }
}


/** Writes the whole database to `path` (created 0600). */
export async function exportPg(url: string, path: string): Promise<DumpCounts> {
  const client = createPgClient({ url, applicationName: 'inbetweenies-export' });
  await client.connect();
  try {
    await migratePg(client, undefined, { apply: false });
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const out = await DumpWriter.create(path, 'postgres');
    await exportKeyed(
      client,
      `SELECT h.home_id, h.created_at, h.purged_through,
         greatest(h.clock, coalesce((SELECT max(seq) FROM entities e WHERE e.home_id = h.home_id), 0)) AS watermark
       FROM homes h WHERE ($1::text IS NULL OR h.home_id > $1) ORDER BY h.home_id LIMIT ${BATCH}`,
      ROWS.home,
      (r) => [r.home_id],
      (r) => out.write({ t: 'home', ...r }),
    );
    await exportKeyed(
      client,
      `SELECT client_id, secret, home_id, created_at, last_ack_watermark, last_ack_at FROM clients
       WHERE ($1::text IS NULL OR client_id > $1) ORDER BY client_id LIMIT ${BATCH}`,
      ROWS.client,
      (r) => [r.client_id],
      (r) => out.write({ t: 'client', ...r }),
    );
    await exportKeyed(
      client,
      `SELECT token_hash, kind, client_id, expires_at, family FROM tokens
       WHERE ($1::text IS NULL OR token_hash > $1) ORDER BY token_hash LIMIT ${BATCH}`,
      ROWS.token,
      (r) => [r.token_hash],
      (r) => out.write({ t: 'token', ...r }),
    );
    await exportKeyed(
      client,
      `SELECT home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, origin_client, attrs, foreign_seq, claimed_at
       FROM entities WHERE ($1::text IS NULL OR (home_id, entity_type, entity_id) > ($1, $2, $3)) ORDER BY home_id, entity_type, entity_id LIMIT ${BATCH}`,
      ROWS.entity,
      (r) => [r.home_id, r.entity_type, r.entity_id],
      (r) => out.write({ t: 'entity', ...r }),
    );
    await exportKeyed(
      client,
      `SELECT client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at FROM push_results
       WHERE ($1::text IS NULL OR (client_id, client_sync_id) > ($1, $2)) ORDER BY client_id, client_sync_id LIMIT ${BATCH}`,
      ROWS.result,
      (r) => [r.client_id, r.client_sync_id],
      (r) => out.write({ t: 'result', ...r }),
    );
    await exportKeyed(
      client,
      `SELECT id, client_id, seq, entry FROM conflicts WHERE ($1::bigint IS NULL OR id > $1) ORDER BY id LIMIT ${BATCH}`,
      ROWS.conflict.extend({ id: Int }),
      (r) => [r.id],
      (r) => out.write({ t: 'conflict', client_id: r.client_id, seq: r.seq, entry: r.entry }),
    );
    await exportKeyed(
      client,
      `SELECT ${HISTORY_COLUMNS} FROM history WHERE ($1::bigint IS NULL OR id > $1) ORDER BY id LIMIT ${BATCH}`,
      ROWS.history,
      (r) => [r.id],
      (r) => out.write({ t: 'history', ...r }),
    );
    const meta = rowsOf(ROWS.meta, (await client.query("SELECT key, value FROM meta WHERE key = 'cursor_key'")).rows, 'meta');
    for (const m of meta) await out.write({ t: 'meta', ...m });
    await client.query('COMMIT');
    return await out.finish();
  } finally {
    await client.end();
  }
}

type Batch = { kind: DumpRecord['t']; rows: DumpRecord[] };

const INSERTS: Record<DumpRecord['t'], { sql: string; columns: (r: DumpRecord) => unknown[]; types: string[] }> = {
  home: {
    sql: 'INSERT INTO homes (home_id, created_at, purged_through, clock)',
    types: ['text', 'bigint', 'bigint', 'bigint'],
    columns: (r) => (r.t === 'home' ? [r.home_id, r.created_at, r.purged_through, r.watermark] : []),
  },
  client: {
    sql: 'INSERT INTO clients (client_id, secret, home_id, created_at, last_ack_watermark, last_ack_at)',
    types: ['text', 'text', 'text', 'bigint', 'bigint', 'bigint'],
    columns: (r) => (r.t === 'client' ? [r.client_id, r.secret, r.home_id, r.created_at, r.last_ack_watermark, r.last_ack_at] : []),
  },
  token: {
    sql: 'INSERT INTO tokens (token_hash, kind, client_id, expires_at, family)',
    types: ['text', 'text', 'text', 'bigint', 'text'],
    columns: (r) => (r.t === 'token' ? [r.token_hash, r.kind, r.client_id, r.expires_at, r.family] : []),
  },
  // bucket and hash are left to their default (-1, NULL): the store fills them in when it opens (pg/digests.ts).
  entity: {
    sql: `INSERT INTO entities (home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, origin_client,
      attrs, foreign_seq, claimed_at)`,
    types: ['text', 'text', 'text', 'text', 'bigint', 'text', 'boolean', 'bigint', 'bigint', 'smallint', 'text', 'text', 'bigint', 'bigint'],
    columns: (r) =>
      r.t === 'entity'
        ? [
            r.home_id, r.entity_type, r.entity_id, r.data, r.updated_at, r.sync_id, r.deleted, r.seq, r.created_seq,
            ENTITY_PRIORITY[r.entity_type], r.origin_client, r.attrs, r.foreign_seq, r.claimed_at,
          ]
        : [],
  },
  result: {
    sql: 'INSERT INTO push_results (client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at)',
    types: ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'integer', 'bigint'],
    columns: (r) =>
      r.t === 'result'
        ? [r.client_id, r.client_sync_id, r.status, r.server_sync_id, r.entity_type, r.entity_id, r.detail, r.applications, r.recorded_at]
        : [],
  },
  conflict: {
    sql: 'INSERT INTO conflicts (client_id, seq, entry)',
    types: ['text', 'bigint', 'text'],
    columns: (r) => (r.t === 'conflict' ? [r.client_id, r.seq, r.entry] : []),
  },
  // the ids are kept; importPg moves the id sequence past the highest afterwards
  history: {
    sql: `INSERT INTO history (${HISTORY_COLUMNS})`,
    types: ['bigint', 'text', 'text', 'text', 'bigint', 'text', 'text', 'text', 'text', 'text', 'bigint', 'bigint', 'text', 'text', 'text'],
    columns: (r) =>
      r.t === 'history'
        ? [
            r.id, r.home_id, r.entity_type, r.entity_id, r.recorded_at, r.why, r.reason, r.operation, r.data, r.attributes,
            r.updated_at, r.claimed_at, r.sync_id, r.written_by, r.decided_by,
          ]
        : [],
  },
  meta: {
    sql: 'INSERT INTO meta (key, value)',
    types: ['text', 'text'],
    columns: (r) => (r.t === 'meta' ? [r.key, r.value] : []),
  },
};

async function flush(client: pg.ClientBase, batch: Batch): Promise<void> {
  if (batch.rows.length === 0) return;
  const spec = INSERTS[batch.kind];
  const columns = spec.types.map((_, i) => batch.rows.map((r) => spec.columns(r)[i]));
  const unnest = spec.types.map((type, i) => `$${i + 1}::${type}[]`).join(', ');
  const conflict = batch.kind === 'meta' ? ' ON CONFLICT (key) DO UPDATE SET value = excluded.value' : '';
  await client.query(`${spec.sql} SELECT * FROM unnest(${unnest})${conflict}`, columns);
  batch.rows = [];
}

/** Imports a dump into an empty PostgreSQL database (migrated first), in one transaction. */
export async function importPg(url: string, path: string): Promise<DumpCounts> {
  const client = createPgClient({ url, applicationName: 'inbetweenies-import' });
  await client.connect();
  try {
    await migratePg(client);
    await client.query('BEGIN');
    const existing = await client.query('SELECT 1 FROM homes LIMIT 1');
    if ((existing.rowCount ?? 0) > 0) throw new GatewayError('BAD_REQUEST', 'import: the database already holds homes; import only into an empty one');
    const batch: Batch = { kind: 'home', rows: [] };
    const { counts } = await readDump(path, async (record) => {
      if (record.t !== batch.kind || batch.rows.length >= 1000) {
        await flush(client, batch);
        batch.kind = record.t;
      }
      batch.rows.push(record);
    });
    await flush(client, batch);
    // The history's ids came with the dump: the next one the database hands out must be above them.
    await client.query(
      "SELECT setval(pg_get_serial_sequence('history', 'id'), coalesce(max(id), 1), max(id) IS NOT NULL) FROM history",
    );
    await client.query('COMMIT');
    return counts;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

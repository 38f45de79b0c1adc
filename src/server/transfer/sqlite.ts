/**
 * Export from and import into the SQLite store (`<dataDir>/server.db`; transfer/format.ts). Export reads one
 * transaction (a consistent snapshot; stop the server first for an exact one). Import fills a new, empty store in
 * one transaction.
 *
 * SQLite keeps one commit sequence for all homes, so the watermark exported for every home is the store's floor:
 * the highest seq written and watermark issued, plus the persistence slack unless the server recorded exact values
 * at its last clean stop. It bounds everything ever issued to any home, which is what the importing store needs.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import { ENTITY_PRIORITY } from '../../protocol/index.js';
import { openServerDb, SERVER_DB_FILE, type ServerDb } from '../db.js';
import { PERSIST_SLACK_US } from '../store/watermarks.js';
import { DumpWriter, HISTORY_COLUMNS, ROWS, readDump, type DumpCounts, type DumpRecord } from './format.js';

const Int = z.number().int();

function columns(db: ServerDb, table: string): Set<string> {
  const rows = z.array(z.object({ name: z.string() })).parse(db.prepare(`PRAGMA table_info(${table})`).all());
  return new Set(rows.map((r) => r.name));
}

function scalar(db: ServerDb, sql: string): number {
  const row = z.object({ v: Int.nullable() }).parse(db.prepare(sql).get());
  return row.v ?? 0;
}

function metaValue(db: ServerDb, key: string): string | undefined {
  const row = z.object({ value: z.string() }).optional().parse(db.prepare('SELECT value FROM meta WHERE key = ?').get(key));
  return row?.value;
}

/** The bound of every seq written and watermark issued by this store (see the module comment). */
function storeWatermark(db: ServerDb, hasIssued: boolean): number {
  const exact = metaValue(db, 'watermarks_exact') === '1';
  const slack = exact ? 0 : PERSIST_SLACK_US;
  const floor = Number(metaValue(db, 'floor') ?? '0') || 0;
  const issued = hasIssued ? scalar(db, 'SELECT max(issued_through) AS v FROM homes') : 0;
  return Math.max(
    scalar(db, 'SELECT max(seq) AS v FROM entities'),
    scalar(db, 'SELECT max(seq) AS v FROM conflicts'),
    floor === 0 ? 0 : floor + slack,
    issued === 0 ? 0 : issued + slack,
  );
}


const HomeRow = ROWS.home.omit({ watermark: true });
/** SQLite stores the deleted flag as 0 / 1. */
const EntityRow = ROWS.entity.extend({ deleted: z.union([z.literal(0), z.literal(1)]) });

async function each<T>(db: ServerDb, sql: string, schema: z.ZodType<T>, emit: (row: T) => Promise<void>): Promise<void> {
  for (const row of db.prepare(sql).iterate()) await emit(schema.parse(row));
}

/** Writes the store in `dataDir` to `path` (created 0600). */
export async function exportSqlite(dataDir: string, path: string): Promise<DumpCounts> {
  const file = join(dataDir, SERVER_DB_FILE);
  if (!existsSync(file)) throw new GatewayError('BAD_REQUEST', `export: no ${SERVER_DB_FILE} in ${dataDir}`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const hasIssued = columns(db, 'homes').has('issued_through');
    const hasFamily = columns(db, 'tokens').has('family');
    // A file last opened by a build before the attribute-level state and the history (migration 3) has neither.
    const hasAttrs = columns(db, 'entities').has('attrs');
    const hasHistory = columns(db, 'history').size > 0;
    const out = await DumpWriter.create(path, 'sqlite');
    db.exec('BEGIN'); // one read snapshot for the whole export
    try {
      const watermark = storeWatermark(db, hasIssued);
      await each(db, 'SELECT home_id, created_at, purged_through FROM homes ORDER BY home_id', HomeRow, (r) =>
        out.write({ t: 'home', ...r, watermark: Math.max(watermark, r.purged_through) }),
      );
      await each(db, 'SELECT client_id, secret, home_id, created_at, last_ack_watermark, last_ack_at FROM clients ORDER BY client_id', ROWS.client, (r) =>
        out.write({ t: 'client', ...r }),
      );
      await each(
        db,
        `SELECT token_hash, kind, client_id, expires_at, ${hasFamily ? 'family' : 'NULL AS family'} FROM tokens ORDER BY token_hash`,
        ROWS.token,
        (r) => out.write({ t: 'token', ...r }),
      );
      await each(
        db,
        `SELECT home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, origin_client,
           ${hasAttrs ? 'attrs, foreign_seq, claimed_at' : 'NULL AS attrs, 0 AS foreign_seq, NULL AS claimed_at'}
         FROM entities ORDER BY home_id, entity_type, entity_id`,
        EntityRow,
        (r) => out.write({ t: 'entity', ...r, deleted: r.deleted === 1 }),
      );
      await each(
        db,
        'SELECT client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at FROM push_results ORDER BY client_id, client_sync_id',
        ROWS.result,
        (r) => out.write({ t: 'result', ...r }),
      );
      await each(db, 'SELECT client_id, seq, entry FROM conflicts ORDER BY id', ROWS.conflict, (r) => out.write({ t: 'conflict', ...r }));
      if (hasHistory) await each(db, `SELECT ${HISTORY_COLUMNS} FROM history ORDER BY id`, ROWS.history, (r) => out.write({ t: 'history', ...r }));
      const key = metaValue(db, 'cursor_key');
      if (key !== undefined) await out.write({ t: 'meta', key: 'cursor_key', value: key });
    } finally {
      db.exec('COMMIT');
    }
    return await out.finish();
  } finally {
    db.close();
  }
}

/** Imports a dump into a new or empty store in `dataDir`, in one transaction. */
export async function importSqlite(dataDir: string, path: string): Promise<DumpCounts> {
  const db = openServerDb(dataDir);
  try {
    if (db.prepare('SELECT 1 FROM homes LIMIT 1').get() !== undefined) {
      throw new GatewayError('BAD_REQUEST', 'import: the store already holds homes; import only into an empty one');
    }
    const hasIssued = columns(db, 'homes').has('issued_through');
    const hasFamily = columns(db, 'tokens').has('family');
    const put = {
      home: db.prepare(
        hasIssued
          ? 'INSERT INTO homes (home_id, created_at, purged_through, issued_through) VALUES (?, ?, ?, ?)'
          : 'INSERT INTO homes (home_id, created_at, purged_through) VALUES (?, ?, ?)',
      ),
      client: db.prepare('INSERT INTO clients (client_id, secret, home_id, created_at, last_ack_watermark, last_ack_at) VALUES (?, ?, ?, ?, ?, ?)'),
      token: db.prepare(
        hasFamily
          ? 'INSERT INTO tokens (token_hash, kind, client_id, expires_at, family) VALUES (?, ?, ?, ?, ?)'
          : 'INSERT INTO tokens (token_hash, kind, client_id, expires_at) VALUES (?, ?, ?, ?)',
      ),
      // bucket and hash are left to their default (-1, NULL): the store fills them in when it opens (store/digests.ts).
      entity: db.prepare(
        `INSERT INTO entities (home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, origin_client,
           attrs, foreign_seq, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      result: db.prepare(
        'INSERT INTO push_results (client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      conflict: db.prepare('INSERT INTO conflicts (client_id, seq, entry) VALUES (?, ?, ?)'),
      // the ids are kept; SQLite hands out the next above the highest
      history: db.prepare(`INSERT INTO history (${HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      meta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    };
    let floor = 0;
    const insert = (r: DumpRecord): void => {
      switch (r.t) {
        case 'home':
          floor = Math.max(floor, r.watermark);
          if (hasIssued) put.home.run(r.home_id, r.created_at, r.purged_through, r.watermark);
          else put.home.run(r.home_id, r.created_at, r.purged_through);
          return;
        case 'client':
          put.client.run(r.client_id, r.secret, r.home_id, r.created_at, r.last_ack_watermark, r.last_ack_at);
          return;
        case 'token':
          if (hasFamily) put.token.run(r.token_hash, r.kind, r.client_id, r.expires_at, r.family);
          else put.token.run(r.token_hash, r.kind, r.client_id, r.expires_at);
          return;
        case 'entity':
          put.entity.run(
            r.home_id, r.entity_type, r.entity_id, r.data, r.updated_at, r.sync_id, r.deleted ? 1 : 0, r.seq, r.created_seq,
            ENTITY_PRIORITY[r.entity_type], r.origin_client, r.attrs, r.foreign_seq, r.claimed_at,
          );
          return;
        case 'result':
          put.result.run(r.client_id, r.client_sync_id, r.status, r.server_sync_id, r.entity_type, r.entity_id, r.detail, r.applications, r.recorded_at);
          return;
        case 'conflict':
          put.conflict.run(r.client_id, r.seq, r.entry);
          return;
        case 'history':
          put.history.run(
            r.id, r.home_id, r.entity_type, r.entity_id, r.recorded_at, r.why, r.reason, r.operation, r.data, r.attributes,
            r.updated_at, r.claimed_at, r.sync_id, r.written_by, r.decided_by,
          );
          return;
        case 'meta':
          put.meta.run(r.key, r.value);
          return;
      }
    };
    db.exec('BEGIN IMMEDIATE');
    try {
      const { counts } = await readDump(path, async (record) => insert(record));
      // Every home's watermark bounds the single sequence from here on; the values written are upper bounds.
      put.meta.run('floor', String(floor));
      if (hasIssued) put.meta.run('watermarks_exact', '1');
      db.exec('COMMIT');
      return counts;
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  } finally {
    db.close();
  }
}

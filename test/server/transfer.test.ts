/**
 * Moving a server from SQLite to PostgreSQL (and back) with nothing lost: a store filled through the real server —
 * many homes, tombstones, conflicts, acks, tokens, attribute-level states, a clamped write, overwritten and losing
 * versions — is exported after the server stops, imported into an empty PostgreSQL database and into a new SQLite
 * store, and every home's entities (seqs included), every client, the conflicts a client has still to hear about,
 * the recorded push results, each home's watermark, the per-attribute versions and clamped times, the sync history
 * (same entries, same order) and the convergence digest (recomputed by the importing store) are found again. A dump
 * written before the attribute versions and the history were carried still imports.
 */
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseTimestamp, type WireHistoryEntry } from '../../src/protocol/index.js';
import type { ClientCredentials, SyncStore } from '../../src/server/index.js';
import { SERVER_DB_FILE } from '../../src/server/db.js';
import { createPgClient } from '../../src/server/pg/connect.js';
import { SqliteStore } from '../../src/server/store/sqlite-store.js';
import { exportPg, importPg } from '../../src/server/transfer/pg.js';
import { exportSqlite, importSqlite } from '../../src/server/transfer/sqlite.js';
import { freshDatabase } from '../helpers/pg.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt, stateChange } from './client.js';

const HOMES = 25;
/** Per home: dev-0 (lost), dev-1 (overwritten), dev-2 (deleted over), dev-3 (renamed three times), state-0 (merged). */
const WITH_HISTORY = [['device', 'dev-0'], ['device', 'dev-1'], ['device', 'dev-2'], ['device', 'dev-3'], ['entity_state', 'state-0']] as const;
const HISTORY_PER_HOME = 7;

interface Filled {
  readonly t0: number;
  readonly homes: string[];
  readonly gateways: TestClient[];
  readonly apps: TestClient[];
  readonly lastSync: string[];
}

async function fill(url: string, add: (home: string) => Promise<ClientCredentials>): Promise<Filled> {
  const homes = Array.from({ length: HOMES }, (_, i) => `home-${String(i).padStart(3, '0')}`);
  const gateways: TestClient[] = [];
  const apps: TestClient[] = [];
  const lastSync: string[] = [];
  const t0 = Date.now() - 60_000;
  for (const home of homes) {
    const gw = new TestClient(url, await add(home));
    const app = new TestClient(url, await add(home));
    await gw.login();
    await app.login();
    await gw.pushOk(Array.from({ length: 8 }, (_, i) => deviceChange(`dev-${i}`, `Device ${i}`, isoAt(t0))));
    // a conflict the app loses (older), one it wins over the gateway's version, and a delete (a tombstone)
    await app.pushOk([deviceChange('dev-0', 'old', isoAt(t0 - 10_000)), deviceChange('dev-1', 'app wins', isoAt(t0 + 5_000))]);
    await app.pushOk([{ entity_type: 'device', entity_id: 'dev-2', operation: 'delete', updated_at: isoAt(t0 + 6_000), client_sync_id: `del-${home}` }]);
    // a run of versions of one entity (history in order), a state whose attributes two clients wrote, a clamped write
    for (let n = 1; n <= 3; n++) await app.pushOk([deviceChange('dev-3', `rename ${n}`, isoAt(t0 + n * 1_000))]);
    await gw.pushOk([stateChange('state-0', { power: 'on', level: 1 }, isoAt(t0))]);
    await app.pushOk([{ ...stateChange('state-0', { level: 5 }, isoAt(t0 + 5_000)), partial: true }]);
    const ahead = await gw.pushOk([deviceChange('dev-clock', 'clock ahead', isoAt(Date.now() + 3_600_000))]);
    expect(ahead.applied[0]).toHaveProperty('clamped_to');
    const pulled = await gw.pullAll(null, { include_deleted: true });
    const ack = await gw.ack(pulled.serverTime);
    expect(ack.status).toBe(200);
    gateways.push(gw);
    apps.push(app);
    lastSync.push(pulled.serverTime);
  }
  return { t0, homes, gateways, apps, lastSync };
}

/** The entity columns of the extensions, as the database holds them (sorted in JS: the collations differ). */
const ExtRow = z.object({
  home_id: z.string(),
  entity_type: z.string(),
  entity_id: z.string(),
  attrs: z.string().nullable(),
  foreign_seq: z.number().int(),
  claimed_at: z.number().int().nullable(),
});
type ExtRow = z.infer<typeof ExtRow>;
const EXT_SQL = 'SELECT home_id, entity_type, entity_id, attrs, foreign_seq, claimed_at FROM entities';

function sorted(rows: ExtRow[]): ExtRow[] {
  const key = (r: ExtRow): string => `${r.home_id}\0${r.entity_type}\0${r.entity_id}`;
  return rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function extSqlite(dataDir: string): ExtRow[] {
  const db = new Database(join(dataDir, SERVER_DB_FILE), { readonly: true, fileMustExist: true });
  try {
    return sorted(z.array(ExtRow).parse(db.prepare(EXT_SQL).all()));
  } finally {
    db.close();
  }
}

async function extPg(url: string): Promise<ExtRow[]> {
  const client = createPgClient({ url });
  await client.connect();
  try {
    return sorted(z.array(ExtRow).parse((await client.query(EXT_SQL)).rows));
  } finally {
    await client.end();
  }
}

/** Every history entry of an entity, newest first, walked two a page with `before` (as a client pages). */
async function historyOf(store: SyncStore, homeId: string, entityType: string, entityId: string): Promise<WireHistoryEntry[]> {
  const entries: WireHistoryEntry[] = [];
  let before: number | null = null;
  for (;;) {
    const page = await store.history({ homeId, entityType, entityId, limit: 2, before });
    entries.push(...page.entries);
    if (!page.more) return entries;
    before = page.nextBefore;
  }
}

/** The history, digest and entities of every home on `target` are the source's. */
async function expectSameHomes(target: SyncStore, source: SyncStore, homes: readonly string[]): Promise<void> {
  for (const home of homes) {
    expect(await target.entities(home)).toEqual(await source.entities(home));
    const digest = await source.digest(home);
    expect(digest.home).not.toBe('0'.repeat(16));
    expect(await target.digest(home)).toEqual(digest);
    for (const [type, id] of WITH_HISTORY) expect(await historyOf(target, home, type, id)).toEqual(await historyOf(source, home, type, id));
  }
}

/**
 * Writes after the move still see what moved: the gateway's `power` (written at t0, before the app's `level` at
 * t0 + 5 s) is beaten by a partial write at t0 + 2 s only if its own version moved (else the entity's t0 + 5 s
 * decides); and a new history entry lands above the moved ones, newest first.
 */
async function expectWritesAfterMove(ts: TestServer, filled: Filled, i: number): Promise<void> {
  const home = filled.homes[i] as string;
  const gw = new TestClient(ts.url, (filled.gateways[i] as TestClient).creds);
  const app = new TestClient(ts.url, (filled.apps[i] as TestClient).creds);
  await gw.login();
  await app.login();
  const merged = await gw.pushOk([{ ...stateChange('state-0', { power: 'off' }, isoAt(filled.t0 + 2_000)), partial: true }]);
  expect(merged.applied[0]?.status).toBe('applied');
  const before = await historyOf(ts.server.store, home, 'device', 'dev-3');
  await app.pushOk([{ ...deviceChange('dev-3', 'after the move', isoAt(filled.t0 + 10_000)), sync_id: 'after-move' }]);
  const after = await historyOf(ts.server.store, home, 'device', 'dev-3');
  expect(after.slice(1)).toEqual(before);
  expect(after[0]).toMatchObject({ why: 'overwritten', data: { name: 'rename 3' } });
  expect(after[0]?.id).toBeGreaterThan(before[0]?.id ?? Number.MAX_SAFE_INTEGER);
}

describe('export / import between SQLite and PostgreSQL', () => {
  let dir: string;
  let sqliteDir: string;
  let filled: Filled;
  let source: SqliteStore;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ib-move-'));
    sqliteDir = join(dir, 'sqlite');
    const ts = await startTestServer({}, { dataDir: sqliteDir });
    try {
      filled = await fill(ts.url, (home) => ts.addClient(home));
    } finally {
      await ts.close();
    }
    source = new SqliteStore({ dataDir: sqliteDir, clock: Date.now, nonceWindowSeconds: 300 });
  });

  afterAll(async () => {
    await source?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('SQLite → dump → PostgreSQL → dump → SQLite keeps entities, attribute versions, clamped times, clients, results, conflicts, history, watermarks; the digest is recomputed', async () => {
    const dump = join(dir, 'from-sqlite.jsonl');
    const counts = await exportSqlite(sqliteDir, dump);
    expect(counts).toMatchObject({ home: HOMES, client: 2 * HOMES, entity: 10 * HOMES, meta: 1, history: HISTORY_PER_HOME * HOMES });
    // lost (dev-0), won over another client (dev-1), delete over it (dev-2), dev-3 over the gateway's, level over its
    expect(counts.conflict).toBe(5 * HOMES);
    const sourceExt = extSqlite(sqliteDir);
    expect(sourceExt.filter((r) => r.attrs !== null)).toHaveLength(HOMES); // what is checked below was written
    expect(sourceExt.filter((r) => r.foreign_seq > 0)).toHaveLength(HOMES);
    expect(sourceExt.filter((r) => r.claimed_at !== null)).toHaveLength(HOMES);

    const url = await freshDatabase('move');
    expect(await importPg(url, dump)).toEqual(counts);
    expect(await extPg(url)).toEqual(sourceExt);
    // a server started on the imported database fills in the digest the dump left out
    const onPg = await startTestServer({}, { databaseUrl: url });
    try {
      const pgStore = onPg.server.store;
      expect(pgStore.cursorKey).toBe(source.cursorKey);
      await expectSameHomes(pgStore, source, filled.homes);
      for (const [i, home] of filled.homes.entries()) {
        const gw = filled.gateways[i] as TestClient;
        const app = filled.apps[i] as TestClient;
        expect(await pgStore.getClient(gw.creds.client_id)).toEqual(await source.getClient(gw.creds.client_id));
        expect(await pgStore.conflicts(app.creds.client_id, null, Number.MAX_SAFE_INTEGER, 10)).toEqual(
          await source.conflicts(app.creds.client_id, null, Number.MAX_SAFE_INTEGER, 10),
        );
        // the gateway's last_sync, issued by the SQLite server, is accepted for an incremental sync
        const w = parseTimestamp(filled.lastSync[i] as string) as number;
        const opened = await pgStore.openSync(home, w);
        expect(opened).toMatchObject({ ok: true });
        const page = await pgStore.page({
          homeId: home, clientId: gw.creds.client_id, w, h: opened.ok ? opened.h : 0, typesMask: 7, includeDeleted: true, after: null, limit: 100,
        });
        expect(page.changes).toEqual([]); // nothing new since its last sync: no full resync
      }
      const app0 = filled.apps[0] as TestClient;
      expect(await pgStore.lookupToken(app0.token, 'access')).toMatchObject({ ok: true });

      const back = join(dir, 'from-pg.jsonl');
      expect(await exportPg(url, back)).toEqual(counts);
      await expectWritesAfterMove(onPg, filled, 0);

      const sqliteAgain = join(dir, 'sqlite-again');
      expect(await importSqlite(sqliteAgain, back)).toEqual(counts);
      expect(extSqlite(sqliteAgain)).toEqual(sourceExt);
      const again = await startTestServer({}, { dataDir: sqliteAgain });
      try {
        await expectSameHomes(again.server.store, source, filled.homes);
        expect(again.server.store.cursorKey).toBe(source.cursorKey);
        if (!(again.server.store instanceof SqliteStore)) throw new Error('expected SQLite');
        expect(again.server.store.local.sequencer.current()).toBeGreaterThanOrEqual(source.local.sequencer.current());
        await expectWritesAfterMove(again, filled, 1);
      } finally {
        await again.close();
      }
    } finally {
      await onPg.close();
    }
  });

  it('imports a dump written before attribute versions, clamped times and the history were carried, into either store', async () => {
    const dump = join(dir, 'current.jsonl');
    const counts = await exportSqlite(sqliteDir, dump);
    const old = join(dir, 'old.jsonl');
    writeFileSync(old, asOldDump(readFileSync(dump, 'utf8')));
    expect(readFileSync(old, 'utf8')).not.toMatch(/"attrs"|"foreign_seq"|"claimed_at"|"history"/);
    const expected = { ...counts, history: 0 };

    const url = await freshDatabase('old-dump');
    expect(await importPg(url, old)).toEqual(expected);
    const sqliteOld = join(dir, 'sqlite-old');
    expect(await importSqlite(sqliteOld, old)).toEqual(expected);
    expect((await extPg(url)).every((r) => r.attrs === null && r.foreign_seq === 0 && r.claimed_at === null)).toBe(true);
    expect(extSqlite(sqliteOld).every((r) => r.attrs === null && r.foreign_seq === 0 && r.claimed_at === null)).toBe(true);
    for (const target of [await startTestServer({}, { databaseUrl: url }), await startTestServer({}, { dataDir: sqliteOld })]) {
      try {
        for (const home of filled.homes.slice(0, 5)) {
          expect(await target.server.store.entities(home)).toEqual(await source.entities(home));
          expect(await target.server.store.digest(home)).toEqual(await source.digest(home));
          expect(await historyOf(target.server.store, home, 'device', 'dev-3')).toEqual([]);
        }
      } finally {
        await target.close();
      }
    }
  });

  it('exports a file an earlier version last wrote (no attribute versions, clamped times or history yet)', async () => {
    const earlier = join(dir, 'sqlite-earlier');
    mkdirSync(earlier, { mode: 0o700 });
    source.local.db.exec(`VACUUM INTO '${join(earlier, SERVER_DB_FILE)}'`);
    const db = new Database(join(earlier, SERVER_DB_FILE));
    try {
      // the schema before migration 3
      for (const column of ['attrs', 'foreign_seq', 'claimed_at', 'bucket', 'hash']) db.exec(`ALTER TABLE entities DROP COLUMN ${column}`);
      db.exec('DROP TABLE history; DROP TABLE home_digests; PRAGMA user_version = 2');
    } finally {
      db.close();
    }
    const dump = join(dir, 'from-earlier.jsonl');
    const counts = await exportSqlite(earlier, dump);
    expect(counts).toMatchObject({ home: HOMES, entity: 10 * HOMES, history: 0 });
    const url = await freshDatabase('earlier');
    expect(await importPg(url, dump)).toEqual(counts);
    expect((await extPg(url)).every((r) => r.attrs === null && r.foreign_seq === 0 && r.claimed_at === null)).toBe(true);
    const target = await startTestServer({}, { databaseUrl: url });
    try {
      for (const home of filled.homes.slice(0, 5)) {
        expect(await target.server.store.entities(home)).toEqual(await source.entities(home));
        expect(await target.server.store.digest(home)).toEqual(await source.digest(home));
      }
    } finally {
      await target.close();
    }
  });

  it('refuses history lines out of order or with data that is not JSON object text, and imports nothing', async () => {
    const dump = join(dir, 'for-tamper.jsonl');
    await exportSqlite(sqliteDir, dump);
    const lines = readFileSync(dump, 'utf8').trimEnd().split('\n');
    const at = lines.findIndex((l) => l.startsWith('{"t":"history"'));
    expect(at).toBeGreaterThan(0);
    const swapped = [...lines];
    [swapped[at], swapped[at + 1]] = [lines[at + 1] as string, lines[at] as string];
    const badData = lines.map((l, i) => (i === at ? l.replace(/"data":"(?:[^"\\]|\\.)*"/, '"data":"[1]"') : l));
    expect(badData[at]).toContain('"data":"[1]"');
    const cases = [
      { text: swapped, error: new RegExp(`dump line ${at + 2}: history id \\d+ not above the previous \\d+`) },
      { text: badData, error: new RegExp(`dump line ${at + 1}: data: not the JSON text of an object`) },
    ];
    for (const [n, c] of cases.entries()) {
      const file = join(dir, `tampered-${n}.jsonl`);
      writeFileSync(file, `${c.text.join('\n')}\n`);
      const target = join(dir, `sqlite-tampered-${n}`);
      await expect(importSqlite(target, file)).rejects.toThrow(c.error);
      const check = new SqliteStore({ dataDir: target, clock: Date.now, nonceWindowSeconds: 300 });
      try {
        expect(await check.entities('home-000')).toEqual([]);
      } finally {
        await check.close();
      }
    }
    await expect(importPg(await freshDatabase('tampered'), join(dir, 'tampered-0.jsonl'))).rejects.toThrow(/history id/);
  });
});

/** The dump as the previous version wrote it: no history lines or count, entities without the extension fields. */
function asOldDump(text: string): string {
  const Line = z.record(z.string(), z.unknown());
  const out: string[] = [];
  for (const line of text.trimEnd().split('\n')) {
    const record = Line.parse(JSON.parse(line));
    if (record.t === 'history') continue;
    if (record.t === 'entity') {
      delete record.attrs;
      delete record.foreign_seq;
      delete record.claimed_at;
    }
    if (record.t === 'end') {
      const counts = z.record(z.string(), z.number()).parse(record.counts);
      delete counts.history;
      record.counts = counts;
    }
    out.push(JSON.stringify(record));
  }
  return `${out.join('\n')}\n`;
}

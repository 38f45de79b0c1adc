/**
 * Moving a server from SQLite to PostgreSQL (and back) with nothing lost: a store filled through the real server —
 * many homes, tombstones, conflicts, acks, tokens — is exported after the server stops, imported into an empty
 * PostgreSQL database and into a new SQLite store, and every home's entities (seqs included), every client, the
 * conflicts a client has still to hear about, the recorded push results and each home's watermark are found again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../src/protocol/index.js';
import type { ClientCredentials } from '../../src/server/index.js';
import { PgStore } from '../../src/server/pg/store.js';
import { ServerStore } from '../../src/server/store/index.js';
import { exportPg, importPg } from '../../src/server/transfer/pg.js';
import { exportSqlite, importSqlite } from '../../src/server/transfer/sqlite.js';
import { freshDatabase } from '../helpers/pg.js';
import { startTestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt } from './client.js';

const HOMES = 25;

interface Filled {
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
    const pulled = await gw.pullAll(null, { include_deleted: true });
    const ack = await gw.ack(pulled.serverTime);
    expect(ack.status).toBe(200);
    gateways.push(gw);
    apps.push(app);
    lastSync.push(pulled.serverTime);
  }
  return { homes, gateways, apps, lastSync };
}

describe('export / import between SQLite and PostgreSQL', () => {
  let dir: string;
  let sqliteDir: string;
  let filled: Filled;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ib-move-'));
    sqliteDir = join(dir, 'sqlite');
    const ts = await startTestServer({}, { dataDir: sqliteDir });
    try {
      filled = await fill(ts.url, (home) => ts.addClient(home));
    } finally {
      await ts.close();
    }
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('SQLite → dump → PostgreSQL → dump → SQLite keeps every entity, client, result, conflict and watermark', async () => {
    const dump = join(dir, 'from-sqlite.jsonl');
    const counts = await exportSqlite(sqliteDir, dump);
    expect(counts).toMatchObject({ home: HOMES, client: 2 * HOMES, entity: 8 * HOMES, meta: 1 });
    expect(counts.conflict).toBe(3 * HOMES); // lost (dev-0), won over another client (dev-1), delete over it (dev-2)

    const url = await freshDatabase('move');
    expect(await importPg(url, dump)).toEqual(counts);
    const source = new ServerStore({ dataDir: sqliteDir, clock: Date.now });
    const pgStore = await PgStore.open({ url, clock: Date.now });
    try {
      expect(pgStore.cursorKey).toBe(source.cursorKey);
      for (const [i, home] of filled.homes.entries()) {
        expect(await pgStore.entities(home)).toEqual(await source.entities(home));
        const gw = filled.gateways[i] as TestClient;
        const app = filled.apps[i] as TestClient;
        expect(await pgStore.getClient(gw.creds.client_id)).toEqual(source.accounts.getClient(gw.creds.client_id));
        expect(await pgStore.conflicts(app.creds.client_id, null, Number.MAX_SAFE_INTEGER, 10)).toEqual(
          source.delta.conflicts(app.creds.client_id, null, Number.MAX_SAFE_INTEGER, 10),
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
    } finally {
      await pgStore.close();
    }

    const back = join(dir, 'from-pg.jsonl');
    expect(await exportPg(url, back)).toEqual(counts);
    const sqliteAgain = join(dir, 'sqlite-again');
    expect(await importSqlite(sqliteAgain, back)).toEqual(counts);
    const again = new ServerStore({ dataDir: sqliteAgain, clock: Date.now });
    try {
      for (const home of filled.homes) expect(await again.entities(home)).toEqual(await source.entities(home));
      expect(again.cursorKey).toBe(source.cursorKey);
      expect(again.sequencer.current()).toBeGreaterThanOrEqual(source.sequencer.current());
    } finally {
      again.close();
      source.close();
    }
  });
});

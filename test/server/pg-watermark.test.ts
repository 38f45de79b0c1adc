/**
 * The watermark across instances (docs/protocol.md §Watermark across instances), on a real PostgreSQL cluster: two
 * store instances (separate pools, as two server processes have) push into the same home concurrently while a third
 * pages through incremental syncs with small pages, many rounds. A trigger in the test database sleeps a random few
 * ms inside every push transaction after its seqs are taken, so commits land late and out of seq order — exactly
 * the race a naive "seq > last_sync" delta loses. Nothing may be missed, duplicated, or seen half (a sync never
 * shows an entity twice; every inserted entity is seen exactly once over all syncs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { WirePushChange } from '../../src/protocol/index.js';
import { PgStore } from '../../src/server/pg/store.js';
import { ALL_TYPES_MASK } from '../../src/server/store/pull.js';
import { freshDatabase } from '../helpers/pg.js';

const HOME = 'home-race';
const TYPES = ['entity_state', 'device', 'room'] as const;

function change(id: string, i: number, tag: string): WirePushChange {
  const type = TYPES[i % 3] as (typeof TYPES)[number];
  const data =
    type === 'entity_state' ? { device_id: id, state: { n: i } } : type === 'device' ? { name: `D ${id}` } : { name: `R ${id}` };
  return { entity_type: type, entity_id: id, operation: 'update', data, updated_at: new Date().toISOString(), client_sync_id: `${tag}-${id}-${i}` };
}

interface Seen {
  readonly syncs: number;
  readonly perId: Map<string, number>;
  readonly lastSyncId: Map<string, string>;
}

describe('watermark across instances (PostgreSQL)', () => {
  let url: string;
  let a: PgStore;
  let b: PgStore;
  let pager: PgStore;

  beforeAll(async () => {
    url = await freshDatabase('race');
    const open = (): Promise<PgStore> => PgStore.open({ url, clock: Date.now, poolSize: 4 });
    [a, b, pager] = await Promise.all([open(), open(), open()]);
    // Commits land late: every push transaction sleeps 0-15 ms after it wrote its rows (its seqs are taken).
    const admin = new pg.Client(url);
    await admin.connect();
    await admin.query(`
      CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(random() * 0.015); RETURN NULL; END $$;
      CREATE TRIGGER test_slow_commit AFTER INSERT OR UPDATE ON entities FOR EACH STATEMENT EXECUTE FUNCTION test_slow_commit();`);
    await admin.end();
  });

  afterAll(async () => {
    await Promise.all([a, b, pager].map((s) => s?.close()));
  });

  it('two writers on two instances and a pager on a third: nothing missed, nothing duplicated, many rounds', async () => {
    const writerA = await a.addClient(HOME);
    const writerB = await b.addClient(HOME);
    const reader = await pager.addClient(HOME);
    const inserted = new Set<string>();
    const shared = ['shared-0', 'shared-1', 'shared-2'];
    let writing = true;

    const write = async (store: PgStore, clientId: string, tag: string): Promise<void> => {
      for (let round = 0; round < 40; round++) {
        const ids = Array.from({ length: 4 }, (_, i) => `${tag}-${round}-${i}`);
        ids.forEach((id) => inserted.add(id));
        const changes = [...ids.map((id, i) => change(id, round * 4 + i, tag)), change(shared[round % 3] as string, round, tag)];
        const res = await store.applyPush({ homeId: HOME, clientId }, changes);
        expect(res.applied.filter((x) => x.status === 'rejected')).toEqual([]);
      }
    };

    const page = async (): Promise<Seen> => {
      const perId = new Map<string, number>();
      const lastSyncId = new Map<string, string>();
      let w: number | null = null;
      let syncs = 0;
      let lastH = 0;
      for (let finalRound = false; ; ) {
        const done = !writing;
        const opened = await pager.openSync(HOME, w);
        if (!opened.ok) throw new Error(`openSync refused: ${opened.reason}`);
        expect(opened.h).toBeGreaterThanOrEqual(lastH);
        lastH = opened.h;
        const inThisSync = new Set<string>();
        let after: { p: number; s: number } | null = null;
        for (;;) {
          const res = await pager.page({
            homeId: HOME,
            clientId: reader.client_id,
            w,
            h: opened.h,
            typesMask: ALL_TYPES_MASK,
            includeDeleted: true,
            after,
            limit: 5,
          });
          for (const text of res.changes) {
            const c = JSON.parse(text) as { entity_id: string; sync_id: string };
            expect(inThisSync.has(c.entity_id), `${c.entity_id} twice in one sync`).toBe(false);
            inThisSync.add(c.entity_id);
            perId.set(c.entity_id, (perId.get(c.entity_id) ?? 0) + 1);
            lastSyncId.set(c.entity_id, c.sync_id);
          }
          if (!res.more) break;
          after = res.last;
        }
        w = opened.h;
        syncs += 1;
        if (finalRound) break;
        if (done) finalRound = true; // one more sync after the writers finished: it must find nothing new
      }
      return { syncs, perId, lastSyncId };
    };

    const pagerRun = page();
    await Promise.all([write(a, writerA.client_id, 'a'), write(b, writerB.client_id, 'b')]);
    writing = false;
    const seen = await pagerRun;

    expect(seen.syncs).toBeGreaterThan(10);
    const missed = [...inserted].filter((id) => !seen.perId.has(id));
    const duplicated = [...inserted].filter((id) => (seen.perId.get(id) ?? 0) > 1);
    expect({ missed, duplicated }).toEqual({ missed: [], duplicated: [] });
    // The shared entities, updated by both writers all along: the pager ends on the server's final versions.
    const final = await a.entities(HOME);
    for (const id of shared) {
      expect(seen.lastSyncId.get(id)).toBe(final.find((e) => e.entity_id === id)?.sync_id);
    }
  });
});

/**
 * The portable dump on PostgreSQL: export a store with tombstones, conflicts, tokens and many homes, import it into
 * an empty database, and find everything again — entities byte for byte, secrets, token hashes, acks, push results,
 * conflicts, the sync history, the cursor key, each home's digest (recomputed by the target) and watermark (a
 * last_sync issued before the move is still accepted, and writes after it sort above it). A truncated or tampered
 * dump is refused and imports nothing.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WirePushChange } from '../../src/protocol/index.js';
import { PgStore } from '../../src/server/pg/store.js';
import { exportPg, importPg } from '../../src/server/transfer/pg.js';
import { freshDatabase } from '../helpers/pg.js';

const TTL = { accessTtlSeconds: 3600, refreshTtlSeconds: 86_400 };

function push(id: string, at: string, csid: string, op: 'update' | 'delete' = 'update'): WirePushChange {
  return { entity_type: 'device', entity_id: id, operation: op, data: { name: `N ${id} ${csid}` }, updated_at: at, client_sync_id: csid };
}

describe('export / import on PostgreSQL', () => {
  let dir: string;
  let source: PgStore;
  let sourceUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ib-dump-'));
    sourceUrl = await freshDatabase('src');
    source = await PgStore.open({ url: sourceUrl, clock: Date.now });
  });

  afterAll(async () => {
    await source?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips homes, clients, tokens, entities with tombstones, results, conflicts, history, digest, cursor key and watermarks', async () => {
    const homes = Array.from({ length: 30 }, (_, i) => `home-${i}`);
    const clients = await Promise.all(homes.map(async (h) => [await source.addClient(h), await source.addClient(h)] as const));
    const t0 = Date.now();
    for (const [i, [a, b]] of clients.entries()) {
      const home = homes[i] as string;
      const at = (ms: number): string => new Date(t0 + ms).toISOString();
      await source.applyPush({ homeId: home, clientId: a.client_id }, [push('d1', at(0), 'a1'), push('d2', at(0), 'a2'), push('d3', at(0), 'a3')]);
      await source.applyPush({ homeId: home, clientId: b.client_id }, [push('d1', at(-10_000), 'b1'), push('d2', at(0), 'b2', 'delete')]);
    }
    const tokens = await source.issueTokens(clients[0]?.[0].client_id as string, TTL);
    const opened = await source.openSync('home-0', null);
    if (!opened.ok) throw new Error('open');
    await source.recordAck(clients[0]?.[0].client_id as string, opened.h);

    const file = join(dir, 'dump.jsonl');
    const exported = await exportPg(sourceUrl, file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // history: b's older d1 lost, its delete overwrote a's d2
    expect(exported).toMatchObject({ home: 30, client: 60, entity: 90, conflict: 60, meta: 1, history: 60 });

    const targetUrl = await freshDatabase('dst');
    const imported = await importPg(targetUrl, file);
    expect(imported).toEqual(exported);
    const target = await PgStore.open({ url: targetUrl, clock: Date.now });
    try {
      expect(target.cursorKey).toBe(source.cursorKey);
      // the watermark moved with the home (checked before anything writes): a last_sync issued before is accepted
      expect(await target.openSync('home-0', opened.h)).toMatchObject({ ok: true });
      for (const home of homes) {
        expect(await target.entities(home)).toEqual(await source.entities(home));
        // the digest is not in the dump: the target computed it when it opened
        expect(await target.digest(home)).toEqual(await source.digest(home));
        for (const entityId of ['d1', 'd2']) {
          const q = { homeId: home, entityType: 'device', entityId, limit: 10, before: null };
          expect(await target.history(q)).toEqual(await source.history(q));
        }
      }
      const [a, b] = clients[0] ?? [];
      expect(await target.getClient(a?.client_id as string)).toEqual(await source.getClient(a?.client_id as string));
      expect(await target.lookupToken(tokens.accessToken, 'access')).toMatchObject({ ok: true });
      expect(await target.conflicts(b?.client_id as string, null, Number.MAX_SAFE_INTEGER, 10)).toEqual(
        await source.conflicts(b?.client_id as string, null, Number.MAX_SAFE_INTEGER, 10),
      );
      // a retried push gets its stored result: idempotency survives the move
      const retried = await target.applyPush({ homeId: 'home-0', clientId: a?.client_id as string }, [push('d1', new Date(t0).toISOString(), 'a1')]);
      expect(retried.applied[0]?.status).toBe('applied');
      expect(await target.applicationCount(a?.client_id as string, 'a1')).toBe(1);
      // and writes after the move sort above it
      const later = await target.applyPush({ homeId: 'home-0', clientId: b?.client_id as string }, [push('d9', new Date().toISOString(), 'b9')]);
      expect(later.serverTime).toBeGreaterThan(opened.h);
    } finally {
      await target.close();
    }
  });

  it('refuses a truncated or tampered dump and imports nothing', async () => {
    const file = join(dir, 'dump2.jsonl');
    await exportPg(sourceUrl, file);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const truncated = join(dir, 'truncated.jsonl');
    writeFileSync(truncated, `${lines.slice(0, -5).join('\n')}\n`);
    const url = await freshDatabase('bad');
    await expect(importPg(url, truncated)).rejects.toThrow(/no end line/);
    const tampered = join(dir, 'tampered.jsonl');
    writeFileSync(tampered, `${[lines[0], '{"t":"entity","home_id":"x"}', ...lines.slice(1)].join('\n')}\n`);
    await expect(importPg(url, tampered)).rejects.toThrow(/dump line 2/);
    const check = await PgStore.open({ url, clock: Date.now });
    try {
      expect(await check.entities('home-0')).toEqual([]);
      expect(await check.getClient((await source.addClient('home-0')).client_id)).toBeUndefined();
    } finally {
      await check.close();
    }
    await expect(exportPg(sourceUrl, file)).rejects.toThrow(/EEXIST/);
  });
});

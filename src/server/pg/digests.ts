/**
 * The convergence digest on PostgreSQL (docs/protocol.md §Convergence digest): reading a home's sums, and filling in
 * the digest columns of rows written before the digest existed (schema 2 adds them with bucket = -1; an import
 * writes rows without them). The fill runs when a store opens, under the migration's advisory lock so one instance
 * does it; each home's sums are then rebuilt under the home's row lock, so no push of the home interleaves.
 */
import type pg from 'pg';
import { addHash, digestHex, DIGEST_BUCKETS, homeDigest, parseDigestHex } from '../../protocol/index.js';
import type { HomeDigest } from '../store/contract.js';
import { rowDigest } from '../store/plan.js';
import { inTransaction } from './connect.js';
import { DigestRowSchema, HashRowSchema, UnhashedRowSchema, rowsOf } from './rows.js';
import { ADVISORY } from './schema.js';
import { runSql, type Queryable } from './sql.js';

/** The home's digest from its bucket sums (read inside the first page's transaction: the digest as of H). */
export async function readDigest(db: Queryable, homeId: string): Promise<HomeDigest> {
  const sums = new Array<bigint>(DIGEST_BUCKETS).fill(0n);
  for (const row of rowsOf(DigestRowSchema, (await runSql(db, 'digest', [homeId])).rows, 'home_digests')) {
    sums[row.bucket] = BigInt(row.sum) & 0xffff_ffff_ffff_ffffn;
  }
  return { home: digestHex(homeDigest(sums)), buckets: sums.map(digestHex) };
}

async function rebuildHome(client: pg.PoolClient, homeId: string): Promise<void> {
  await runSql(client, 'lockHomeOnly', [homeId]);
  const sums = new Array<bigint>(DIGEST_BUCKETS).fill(0n);
  for (const row of rowsOf(HashRowSchema, (await runSql(client, 'homeHashes', [homeId])).rows, 'entities')) {
    sums[row.bucket] = addHash(sums[row.bucket] ?? 0n, parseDigestHex(row.hash));
  }
  await runSql(client, 'clearDigest', [homeId]);
  await runSql(client, 'putDigest', [homeId, sums.map((_, b) => b), sums.map((s) => s.toString())]);
}

/** Fills the digest columns of unhashed rows, 1,000 a transaction, then rebuilds the sums of the homes touched. */
export async function backfillDigestsPg(pool: pg.Pool): Promise<number> {
  const homes = new Set<string>();
  let filled = 0;
  for (;;) {
    const n = await inTransaction(pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [ADVISORY.migrate]);
      const rows = rowsOf(UnhashedRowSchema, (await runSql(client, 'unhashed')).rows, 'entities');
      if (rows.length === 0) return 0;
      const digests = rows.map((r) => rowDigest(r.entity_type, r.entity_id, JSON.parse(r.data), r.deleted));
      await runSql(client, 'fillHash', [
        rows.map((r) => r.home_id),
        rows.map((r) => r.entity_type),
        rows.map((r) => r.entity_id),
        digests.map((d) => d.bucket),
        digests.map((d) => d.hash),
      ]);
      for (const r of rows) homes.add(r.home_id);
      return rows.length;
    });
    if (n === 0) break;
    filled += n;
  }
  for (const home of homes) await inTransaction(pool, (client) => rebuildHome(client, home));
  return filled;
}

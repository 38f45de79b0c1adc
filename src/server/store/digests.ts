/**
 * The convergence digest of each home on SQLite, maintained incrementally (docs/protocol.md §Convergence digest;
 * protocol/digest.ts): every entity row keeps its bucket and hash, and `home_digests` keeps per home and bucket the
 * sum of the hashes of its live entities. A push adds its plan's per-bucket changes (plan.ts) inside its own
 * transaction, so the digest read with a watermark H is exactly that of the rows at H.
 */
import { z } from 'zod';
import { addHash, digestHex, DIGEST_BUCKETS, homeDigest, parseDigestHex } from '../../protocol/index.js';
import type { ServerDb } from '../db.js';
import type { HomeDigest } from './contract.js';
import { rowDigest } from './plan.js';
import { rowsOf } from './rows.js';

const SumRowSchema = z.object({ bucket: z.number().int(), sum: z.string().regex(/^[0-9a-f]{16}$/) });
const HashRowSchema = z.object({ bucket: z.number().int().min(0).max(DIGEST_BUCKETS - 1), hash: z.string().regex(/^[0-9a-f]{16}$/) });
const UnfilledRowSchema = z.object({
  home_id: z.string(),
  entity_type: z.string(),
  entity_id: z.string(),
  data: z.string(),
  deleted: z.number().int(),
});

export class DigestStore {
  private readonly db: ServerDb;
  private readonly stmts;

  constructor(db: ServerDb) {
    this.db = db;
    this.stmts = {
      read: db.prepare('SELECT bucket, sum FROM home_digests WHERE home_id = ?'),
      put: db.prepare(`INSERT INTO home_digests (home_id, bucket, sum) VALUES (?, ?, ?)
        ON CONFLICT(home_id, bucket) DO UPDATE SET sum = excluded.sum`),
      unfilled: db.prepare('SELECT home_id, entity_type, entity_id, data, deleted FROM entities WHERE bucket = -1 LIMIT 1000'),
      fill: db.prepare('UPDATE entities SET bucket = ?, hash = ? WHERE home_id = ? AND entity_type = ? AND entity_id = ?'),
      rebuild: db.prepare('SELECT bucket, hash FROM entities WHERE home_id = ? AND deleted = 0 AND hash IS NOT NULL'),
      homes: db.prepare('SELECT DISTINCT home_id FROM entities').pluck(),
      clear: db.prepare('DELETE FROM home_digests WHERE home_id = ?'),
    };
    this.backfill();
  }

  /** Adds a push's per-bucket changes (mod 2^64) to the home's sums; call inside the push's transaction. */
  add(homeId: string, changes: readonly bigint[]): void {
    if (changes.every((c) => c === 0n)) return;
    const current = this.sums(homeId);
    changes.forEach((change, bucket) => {
      if (change !== 0n) this.stmts.put.run(homeId, bucket, digestHex(addHash(current[bucket] ?? 0n, change)));
    });
  }

  /** The per-bucket sums of a home. */
  sums(homeId: string): bigint[] {
    const sums = new Array<bigint>(DIGEST_BUCKETS).fill(0n);
    for (const row of rowsOf(SumRowSchema, this.stmts.read.all(homeId), 'home_digests')) {
      if (row.bucket >= 0 && row.bucket < DIGEST_BUCKETS) sums[row.bucket] = parseDigestHex(row.sum);
    }
    return sums;
  }

  /** The home digest and its buckets as wire hex. */
  of(homeId: string): HomeDigest {
    const sums = this.sums(homeId);
    return { home: digestHex(homeDigest(sums)), buckets: sums.map(digestHex) };
  }

  /** Recomputes a home's sums from the rows' hashes (after a backfill; tools). */
  rebuild(homeId: string): void {
    const sums = new Array<bigint>(DIGEST_BUCKETS).fill(0n);
    for (const row of rowsOf(HashRowSchema, this.stmts.rebuild.all(homeId), 'entities')) {
      sums[row.bucket] = addHash(sums[row.bucket] ?? 0n, parseDigestHex(row.hash));
    }
    this.db.transaction(() => {
      this.stmts.clear.run(homeId);
      sums.forEach((sum, bucket) => this.stmts.put.run(homeId, bucket, digestHex(sum)));
    })();
  }

  /** Rows written before the digest existed get their bucket and hash, then every home's sums are rebuilt. */
  private backfill(): void {
    let filled = 0;
    for (;;) {
      const rows = rowsOf(UnfilledRowSchema, this.stmts.unfilled.all(), 'entities');
      if (rows.length === 0) break;
      this.db.transaction(() => {
        for (const r of rows) {
          const d = rowDigest(r.entity_type, r.entity_id, JSON.parse(r.data), r.deleted === 1);
          this.stmts.fill.run(d.bucket, d.hash, r.home_id, r.entity_type, r.entity_id);
        }
      })();
      filled += rows.length;
    }
    if (filled > 0) {
      for (const home of this.stmts.homes.all()) if (typeof home === 'string') this.rebuild(home);
    }
  }
}

/**
 * The convergence digest of each home, maintained incrementally (docs/protocol.md §Convergence digest;
 * protocol/digest.ts): every entity row keeps its bucket and hash, and `home_digests` keeps per home and bucket the
 * sum of the hashes of its live entities. A push accumulates the changes of its writes (`DigestDelta`) and applies
 * them once, inside its own transaction, so the digest read with a watermark H is exactly that of the rows at H.
 */
import {
  addHash,
  bucketOf,
  digestHex,
  DIGEST_BUCKETS,
  entityHash,
  homeDigest,
  parseDigestHex,
  subHash,
} from '../../protocol/index.js';
import type { ServerDb } from '../db.js';

/** The digest columns of a row being written: its bucket and hash (null for a tombstone). */
export interface RowDigest {
  readonly bucket: number;
  readonly hash: string | null;
}

export function rowDigest(type: string, id: string, data: unknown, deleted: boolean): RowDigest {
  return { bucket: bucketOf(type, id), hash: deleted ? null : digestHex(entityHash(type, id, data)) };
}

/** The bucket changes of one transaction, per home. */
export class DigestDelta {
  private readonly sums = new Map<string, bigint[]>();

  /** A row of `homeId` goes from `before` (hash or null) to `after`. */
  change(homeId: string, bucket: number, before: string | null | undefined, after: string | null): void {
    if (before === after) return;
    let sums = this.sums.get(homeId);
    if (sums === undefined) {
      sums = new Array<bigint>(DIGEST_BUCKETS).fill(0n);
      this.sums.set(homeId, sums);
    }
    let value = sums[bucket] ?? 0n;
    if (before) value = subHash(value, parseDigestHex(before));
    if (after) value = addHash(value, parseDigestHex(after));
    sums[bucket] = value;
  }

  entries(): IterableIterator<[string, bigint[]]> {
    return this.sums.entries();
  }
}

export interface HomeDigest {
  readonly home: string;
  readonly buckets: string[];
}

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

  /** Applies a transaction's bucket changes (call inside that transaction). */
  apply(delta: DigestDelta): void {
    for (const [homeId, changes] of delta.entries()) {
      const current = this.sums(homeId);
      changes.forEach((change, bucket) => {
        if (change === 0n) return;
        this.stmts.put.run(homeId, bucket, digestHex(addHash(current[bucket] ?? 0n, change)));
      });
    }
  }

  /** The per-bucket sums of a home. */
  sums(homeId: string): bigint[] {
    const sums = new Array<bigint>(DIGEST_BUCKETS).fill(0n);
    for (const row of this.stmts.read.all(homeId) as { bucket: number; sum: string }[]) {
      if (row.bucket >= 0 && row.bucket < DIGEST_BUCKETS && /^[0-9a-f]{16}$/.test(row.sum)) sums[row.bucket] = parseDigestHex(row.sum);
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
    for (const row of this.stmts.rebuild.all(homeId) as { bucket: number; hash: string }[]) {
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
      const rows = this.stmts.unfilled.all() as { home_id: string; entity_type: string; entity_id: string; data: string; deleted: number }[];
      if (rows.length === 0) break;
      this.db.transaction(() => {
        for (const r of rows) {
          const d = rowDigest(r.entity_type, r.entity_id, JSON.parse(r.data) as unknown, r.deleted === 1);
          this.stmts.fill.run(d.bucket, d.hash, r.home_id, r.entity_type, r.entity_id);
        }
      })();
      filled += rows.length;
    }
    if (filled > 0) for (const home of this.stmts.homes.all() as string[]) this.rebuild(home);
  }
}

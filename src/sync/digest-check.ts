/**
 * The gateway's half of the convergence digest (docs/protocol.md §Convergence digest): the same digest computed over
 * its own store after a delta is applied, compared with the server's, narrowed to the buckets that differ. Entities
 * with a pending local change, and those a push result decided after the delta's watermark, differ by design: their
 * buckets are left out ("dirty"). Pure.
 */
import { bucketOf, DigestBuilder, digestHex, DIGEST_BUCKETS } from '../protocol/digest.js';
import type { StoredEntity } from '../store/types.js';
import { remoteKey } from './delta-apply.js';

export type DigestVerdict =
  | { readonly result: 'match' }
  /** Something pending, and only the home digest to compare with: nothing can be said this time. */
  | { readonly result: 'skipped' }
  /** The home digests differ and the buckets are not known: ask for them. */
  | { readonly result: 'mismatch'; readonly buckets: null }
  | { readonly result: 'mismatch'; readonly buckets: readonly number[] };

export interface DigestCheckInput {
  readonly digest: string;
  readonly buckets?: readonly string[];
  /** Every entity of the store, tombstones included (a pending delete makes its bucket dirty). */
  readonly entities: readonly StoredEntity[];
  /** `type/id` of entities with a pending change or decided by a push after the delta's watermark. */
  readonly dirtyKeys: ReadonlySet<string>;
}

export function compareDigest(input: DigestCheckInput): DigestVerdict {
  const local = new DigestBuilder();
  const dirty = new Set<number>();
  for (const e of input.entities) {
    if (input.dirtyKeys.has(remoteKey(e.entityType, e.entityId))) dirty.add(bucketOf(e.entityType, e.entityId));
    else if (!e.deleted) local.add(e.entityType, e.entityId, e.data);
  }
  for (const key of input.dirtyKeys) {
    const at = key.indexOf('/');
    if (at > 0) dirty.add(bucketOf(key.slice(0, at), key.slice(at + 1)));
  }
  if (input.buckets !== undefined && input.buckets.length === DIGEST_BUCKETS) {
    const differing: number[] = [];
    for (let b = 0; b < DIGEST_BUCKETS; b++) {
      if (!dirty.has(b) && digestHex(local.buckets[b] ?? 0n) !== input.buckets[b]) differing.push(b);
    }
    return differing.length === 0 ? { result: 'match' } : { result: 'mismatch', buckets: differing };
  }
  if (dirty.size > 0) return { result: 'skipped' };
  return digestHex(local.home()) === input.digest ? { result: 'match' } : { result: 'mismatch', buckets: null };
}

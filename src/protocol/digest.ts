/**
 * The convergence digest (extension; docs/protocol.md §Convergence digest): a fingerprint of a home's live entities
 * that the server sends with a sync_delta and the gateway recomputes over its own store, so either side can tell
 * that both hold the same state, and where they differ.
 *
 * - Entity hash: the first 8 bytes of SHA-256 over `type NUL id NUL canonical-JSON(data)` (keys sorted), as an
 *   unsigned 64-bit integer. Only what both sides hold identically enters it: not `updated_at` (the server orders by
 *   a clamped time, the client keeps the claimed one), not `sync_id` (a merged version gets a server-made id).
 * - Bucket: FNV-1a of `type NUL id`, modulo DIGEST_BUCKETS — fixed by the key alone, so an entity never moves.
 * - Bucket digest: the sum modulo 2^64 of its entities' hashes (order-independent, and maintained incrementally:
 *   a write subtracts the old hash and adds the new one, as PowerSync's bucket checksums do).
 * - Home digest: the sum modulo 2^64 of the bucket digests. Wire form: 16 lowercase hex digits.
 * Tombstones are not in it (a client may or may not keep them).
 */
import { createHash } from 'node:crypto';

export const DIGEST_BUCKETS = 16;
const MASK = (1n << 64n) - 1n;

/** Canonical JSON (sorted keys), so key order never makes two equal values differ. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function entityHash(type: string, id: string, data: unknown): bigint {
  return createHash('sha256').update(`${type}\u0000${id}\u0000${canonicalJson(data)}`).digest().readBigUInt64BE(0);
}

export function bucketOf(type: string, id: string): number {
  let h = 0x811c9dc5;
  const key = `${type}\u0000${id}`;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % DIGEST_BUCKETS;
}

export function addHash(sum: bigint, hash: bigint): bigint {
  return (sum + hash) & MASK;
}

export function subHash(sum: bigint, hash: bigint): bigint {
  return (sum - hash + (1n << 64n)) & MASK;
}

export function digestHex(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}

export function parseDigestHex(text: string): bigint {
  return BigInt(`0x${text}`);
}

/** Per-bucket digests of a set of entities, computed from scratch (the gateway's check, the server's rebuild). */
export class DigestBuilder {
  readonly buckets: bigint[] = new Array<bigint>(DIGEST_BUCKETS).fill(0n);

  add(type: string, id: string, data: unknown): void {
    const b = bucketOf(type, id);
    this.buckets[b] = addHash(this.buckets[b] ?? 0n, entityHash(type, id, data));
  }

  home(): bigint {
    return homeDigest(this.buckets);
  }
}

export function homeDigest(buckets: readonly bigint[]): bigint {
  return buckets.reduce((sum, b) => addHash(sum, b), 0n);
}

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
import { hash } from 'node:crypto';

export const DIGEST_BUCKETS = 16;
const MASK = (1n << 64n) - 1n;

/**
 * Canonical JSON (keys sorted by UTF-16 code units, no spaces), so key order never makes two equal values differ.
 * Written as loops: it runs for every entity a push writes and every entity a gateway check reads.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    out += `${i === 0 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(record[key])}`;
  }
  return `${out}}`;
}

/** The first 8 bytes of the entity's SHA-256 (see above), as 16 hex digits: `crypto.hash` is the one-shot form. */
export function entityHashHex(type: string, id: string, data: unknown): string {
  return hash('sha256', `${type}\u0000${id}\u0000${canonicalJson(data)}`, 'hex').slice(0, 16);
}

export function entityHash(type: string, id: string, data: unknown): bigint {
  return BigInt(`0x${entityHashHex(type, id, data)}`);
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

const TWO_32 = 0x1_0000_0000;

/**
 * Per-bucket sums modulo 2^64 kept as two unsigned 32-bit halves: adding or subtracting a hash allocates nothing
 * (a push of 1000 changes, a gateway check over thousands of entities). `toBigInts` gives the sums.
 */
export class BucketSums {
  readonly #hi = new Array<number>(DIGEST_BUCKETS).fill(0);
  readonly #lo = new Array<number>(DIGEST_BUCKETS).fill(0);

  /** Adds (`sign` 1) or subtracts (-1) a hash given as its halves. */
  add(bucket: number, hi: number, lo: number, sign: 1 | -1 = 1): void {
    let low = (this.#lo[bucket] ?? 0) + sign * lo;
    let carry = 0;
    if (low >= TWO_32) {
      low -= TWO_32;
      carry = 1;
    } else if (low < 0) {
      low += TWO_32;
      carry = -1;
    }
    this.#lo[bucket] = low;
    this.#hi[bucket] = ((this.#hi[bucket] ?? 0) + sign * hi + carry) >>> 0;
  }

  /** Adds or subtracts a hash in its 16-hex-digit form. */
  addHex(bucket: number, hex: string, sign: 1 | -1 = 1): void {
    this.add(bucket, parseInt(hex.slice(0, 8), 16), parseInt(hex.slice(8, 16), 16), sign);
  }

  toBigInts(): bigint[] {
    return this.#hi.map((hi, b) => (BigInt(hi) << 32n) | BigInt(this.#lo[b] ?? 0));
  }
}

/** Per-bucket digests of a set of entities, computed from scratch (the gateway's check, the server's rebuild). */
export class DigestBuilder {
  readonly #sums = new BucketSums();

  add(type: string, id: string, data: unknown): void {
    this.#sums.addHex(bucketOf(type, id), entityHashHex(type, id, data));
  }

  /** The bucket digests. */
  get buckets(): bigint[] {
    return this.#sums.toBigInts();
  }

  home(): bigint {
    return homeDigest(this.buckets);
  }
}

export function homeDigest(buckets: readonly bigint[]): bigint {
  return buckets.reduce((sum, b) => addHash(sum, b), 0n);
}

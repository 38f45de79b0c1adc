/**
 * Token buckets per key (a source address, a client id): `burst` tokens, refilled at `ratePerSecond`. Buckets that
 * have refilled completely carry no information; when `maxKeys` are tracked they are dropped first, then the oldest
 * half, so memory stays bounded by the recently active keys whatever a flood of new keys does.
 */
export interface TokenBucketOptions {
  readonly ratePerSecond: number;
  readonly burst: number;
  /** Epoch ms (or any monotonic ms clock). */
  readonly now: () => number;
  /** Upper bound on tracked keys (default 100,000). */
  readonly maxKeys?: number;
}

export type TokenDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class KeyedTokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #maxKeys: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.ratePerSecond > 0)) throw new RangeError(`token bucket: ratePerSecond must be > 0, given ${String(options.ratePerSecond)}`);
    if (!(options.burst >= 1)) throw new RangeError(`token bucket: burst must be >= 1, given ${String(options.burst)}`);
    const maxKeys = options.maxKeys ?? 100_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError(`token bucket: maxKeys must be an integer >= 1, given ${String(maxKeys)}`);
    this.#rate = options.ratePerSecond;
    this.#burst = options.burst;
    this.#now = options.now;
    this.#maxKeys = maxKeys;
  }

  /** Takes one token for `key`; when none is left, says how long (whole seconds, at least 1) until one is. */
  take(key: string): TokenDecision {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#sweep(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = this.#refilled(bucket, now);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.#rate)) };
  }

  /** How many keys are tracked. */
  size(): number {
    return this.#buckets.size;
  }

  #refilled(bucket: Bucket, now: number): number {
    return Math.min(this.#burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * this.#rate);
  }

  #sweep(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (this.#refilled(bucket, now) >= this.#burst) this.#buckets.delete(key);
    }
    if (this.#buckets.size < this.#maxKeys) return;
    let drop = Math.ceil(this.#buckets.size / 2); // Map iterates in insertion order: the oldest first
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break;
      this.#buckets.delete(key);
    }
  }
}

/**
 * Token bucket (seed §Error Codes RATE_LIMITED: 429 + Retry-After). The keys — per client after
 * its signature verified, per bearer token for unsigned requests, per client address for the auth endpoints and for
 * refused credentials — are chosen by the pipeline (app.ts, docs/protocol.md §Rate limits). Buckets that have refilled
 * completely carry no information and are dropped, so the map stays bounded by the number of recently active keys.
 */
export interface RateLimitOptions {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly clock: () => number;
  /** Upper bound on tracked keys; beyond it full buckets are swept, then the oldest entries. */
  readonly maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly clock: () => number;
  private readonly maxKeys: number;

  constructor(options: RateLimitOptions) {
    if (!(options.ratePerSecond > 0)) throw new RangeError(`ratePerSecond must be > 0, got ${options.ratePerSecond}`);
    if (!(options.burst >= 1)) throw new RangeError(`burst must be >= 1, got ${options.burst}`);
    this.rate = options.ratePerSecond;
    this.burst = options.burst;
    this.clock = options.clock;
    this.maxKeys = options.maxKeys ?? 100_000;
  }

  /** Takes one token for `key`; when none is left, says how long until one is. */
  take(key: string): RateDecision {
    const now = this.clock();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.sweep(now);
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    const seconds = (1 - bucket.tokens) / this.rate;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(seconds)) };
  }

  /** Whether `key` has a token left, without taking it. */
  peek(key: string): RateDecision {
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return { ok: true };
    const tokens = Math.min(this.burst, bucket.tokens + ((this.clock() - bucket.at) / 1000) * this.rate);
    if (tokens >= 1) return { ok: true };
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / this.rate)) };
  }

  /** How many keys are tracked. */
  size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(key);
    }
    // Still full: drop the oldest half (Map iterates in insertion order).
    if (this.buckets.size >= this.maxKeys) {
      let drop = Math.ceil(this.buckets.size / 2);
      for (const key of this.buckets.keys()) {
        if (drop-- <= 0) break;
        this.buckets.delete(key);
      }
    }
  }
}

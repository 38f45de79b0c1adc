/**
 * Password checks under attack (docs/security.md §Password checks under attack; unthrottled, 400 wrong-password
 * CONNECTs delayed a valid CONNECT by 14 s). scrypt runs on libuv's threadpool, four threads by default, first come
 * first served: one host sending hundreds of CONNECTs queued every other client behind its hashes. Here, per host
 * (peers.ts: all of loopback is one host), before any hashing:
 *
 * - failures: a token bucket of `failureBurst` failed checks refilled at `failuresPerMinute`. An empty bucket refuses
 *   the host's CONNECTs with a username without hashing (CONNACK 5) until it refills — the backoff. It applies alike
 *   to known and unknown usernames, so it tells nothing about which exist.
 * - pending: at most `maxPendingPerHost` checks of one host running or waiting; beyond, refused without hashing.
 * - fairness: at most `maxConcurrent` checks run at once (the rest of the threadpool stays free for other work), and a
 *   free slot goes to the hosts in turn (round-robin), so a newcomer waits for at most the checks already running,
 *   however many one host has queued.
 *
 * Clients that share a host with an attacker share its budget (on one machine: every local process).
 */

export interface AuthThrottleOptions {
  readonly failureBurst: number;
  readonly failuresPerMinute: number;
  readonly maxConcurrent: number;
  readonly maxPendingPerHost: number;
  readonly now?: () => number;
}

export const DEFAULT_AUTH_THROTTLE: AuthThrottleOptions = { failureBurst: 10, failuresPerMinute: 6, maxConcurrent: 2, maxPendingPerHost: 4 };

export type ThrottleRefusal = 'auth_throttled' | 'auth_busy';

interface Bucket {
  tokens: number;
  at: number;
}

interface Job {
  readonly run: () => void;
}

const MAX_TRACKED_HOSTS = 10_000;

export class AuthThrottle {
  readonly #options: Required<AuthThrottleOptions>;
  readonly #failures = new Map<string, Bucket>();
  /** Per host, its checks waiting for a slot. */
  readonly #queues = new Map<string, Job[]>();
  /** Per host with checks running or waiting: how many, and when it was last given a slot (a dispatch serial). */
  readonly #pending = new Map<string, number>();
  readonly #lastServed = new Map<string, number>();
  #serial = 0;
  #running = 0;

  constructor(options: AuthThrottleOptions) {
    for (const key of ['failureBurst', 'failuresPerMinute', 'maxConcurrent', 'maxPendingPerHost'] as const) {
      const v = options[key];
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`AuthThrottle: ${key} must be a number > 0, given ${String(v)}`);
    }
    this.#options = { now: Date.now, ...options };
  }

  /** Why `host` may not have a password checked now, or undefined. */
  refusal(host: string): ThrottleRefusal | undefined {
    if (this.#tokens(host) < 1) return 'auth_throttled';
    if ((this.#pending.get(host) ?? 0) >= this.#options.maxPendingPerHost) return 'auth_busy';
    return undefined;
  }

  /**
   * Runs `check` (a password verification) for `host` when its turn comes; resolves with its result, or with the
   * refusal when the host may not have one now. A false result counts as a failure of the host.
   */
  async verify(host: string, check: () => Promise<boolean>): Promise<boolean | ThrottleRefusal> {
    const refused = this.refusal(host);
    if (refused) return refused;
    this.#pending.set(host, (this.#pending.get(host) ?? 0) + 1);
    try {
      await new Promise<void>((resolve) => this.#enqueue(host, { run: resolve }));
      try {
        const ok = await check();
        if (!ok) this.#fail(host);
        return ok;
      } finally {
        this.#running -= 1;
        this.#dispatch();
      }
    } finally {
      const left = (this.#pending.get(host) ?? 1) - 1;
      if (left > 0) this.#pending.set(host, left);
      else {
        this.#pending.delete(host);
        this.#lastServed.delete(host);
      }
    }
  }

  /** Checks running now (tests, status). */
  get running(): number {
    return this.#running;
  }

  #enqueue(host: string, job: Job): void {
    const queue = this.#queues.get(host);
    if (queue) queue.push(job);
    else this.#queues.set(host, [job]);
    this.#dispatch();
  }

  /** Gives each free slot to the waiting host served least recently (round-robin over the hosts). */
  #dispatch(): void {
    while (this.#running < this.#options.maxConcurrent) {
      let host: string | undefined;
      let served = Number.POSITIVE_INFINITY;
      for (const waiting of this.#queues.keys()) {
        const at = this.#lastServed.get(waiting) ?? -1;
        if (at < served) [host, served] = [waiting, at];
      }
      if (host === undefined) return;
      const queue = this.#queues.get(host) ?? [];
      const job = queue.shift();
      if (queue.length === 0) this.#queues.delete(host);
      if (!job) continue;
      this.#serial += 1;
      this.#lastServed.set(host, this.#serial);
      this.#running += 1;
      job.run();
    }
  }

  #tokens(host: string): number {
    const bucket = this.#failures.get(host);
    if (!bucket) return this.#options.failureBurst;
    const now = this.#options.now();
    bucket.tokens = Math.min(this.#options.failureBurst, bucket.tokens + ((now - bucket.at) * this.#options.failuresPerMinute) / 60_000);
    bucket.at = now;
    return bucket.tokens;
  }

  #fail(host: string): void {
    const tokens = this.#tokens(host);
    if (!this.#failures.has(host) && this.#failures.size >= MAX_TRACKED_HOSTS) this.#prune();
    this.#failures.set(host, { tokens: tokens - 1, at: this.#options.now() });
  }

  /** Forgets the hosts whose bucket has refilled; if none has, the oldest half. */
  #prune(): void {
    for (const host of [...this.#failures.keys()]) if (this.#tokens(host) >= this.#options.failureBurst) this.#failures.delete(host);
    let drop = this.#failures.size >= MAX_TRACKED_HOSTS ? this.#failures.size / 2 : 0;
    for (const host of this.#failures.keys()) {
      if (drop-- <= 0) break;
      this.#failures.delete(host);
    }
  }
}

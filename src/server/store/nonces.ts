/**
 * Replay protection for signed requests (docs/protocol.md §HMAC: a nonce is accepted once): per client, the nonces
 * seen within the freshness window. An entry expires when its request timestamp leaves the window (the request would be
 * stale anyway). The cache is bounded per client: when full, the oldest entry is evicted and the client's
 * `minTimestamp` rises to that entry's timestamp, so a request not newer than an evicted one is refused as stale —
 * eviction never opens a replay.
 */
interface ClientNonces {
  readonly seen: Map<string, number>; // nonce -> request timestamp (s)
  minTimestamp: number;
}

export type NonceCheck = { ok: true } | { ok: false; reason: 'replayed' | 'stale' };

export class NonceCache {
  private readonly clients = new Map<string, ClientNonces>();
  private readonly windowSeconds: number;
  private readonly maxPerClient: number;

  constructor(options: { windowSeconds: number; maxPerClient?: number }) {
    this.windowSeconds = options.windowSeconds;
    this.maxPerClient = options.maxPerClient ?? 20_000;
  }

  /** Records `nonce` for `clientId` unless it was seen; call only after the MAC verified. */
  accept(clientId: string, nonce: string, timestampSeconds: number, nowSeconds: number): NonceCheck {
    let entry = this.clients.get(clientId);
    if (entry === undefined) {
      entry = { seen: new Map(), minTimestamp: 0 };
      this.clients.set(clientId, entry);
    }
    this.expire(entry, nowSeconds);
    if (timestampSeconds <= entry.minTimestamp) return { ok: false, reason: 'stale' };
    if (entry.seen.has(nonce)) return { ok: false, reason: 'replayed' };
    if (entry.seen.size >= this.maxPerClient) {
      const oldest = entry.seen.entries().next().value;
      if (oldest !== undefined) {
        entry.seen.delete(oldest[0]);
        entry.minTimestamp = Math.max(entry.minTimestamp, oldest[1]);
        if (timestampSeconds <= entry.minTimestamp) return { ok: false, reason: 'stale' };
      }
    }
    entry.seen.set(nonce, timestampSeconds);
    return { ok: true };
  }

  size(clientId: string): number {
    return this.clients.get(clientId)?.seen.size ?? 0;
  }

  private expire(entry: ClientNonces, nowSeconds: number): void {
    const cutoff = nowSeconds - this.windowSeconds;
    // Entries are mostly in timestamp order; stop at the first one still inside the window.
    for (const [nonce, ts] of entry.seen) {
      if (ts >= cutoff) break;
      entry.seen.delete(nonce);
    }
  }
}

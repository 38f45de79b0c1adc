import { describe, expect, it } from 'vitest';
import { NonceCache } from '../../src/server/store/nonces.js';
import { RateLimiter } from '../../src/server/http/rate-limit.js';
import { decodeCursor, encodeCursor } from '../../src/server/cursor.js';

describe('NonceCache', () => {
  it('accepts a nonce once, forgets it after the window', () => {
    const cache = new NonceCache({ windowSeconds: 300 });
    expect(cache.accept('c', 'n1', 1000, 1000)).toEqual({ ok: true });
    expect(cache.accept('c', 'n1', 1000, 1001)).toEqual({ ok: false, reason: 'replayed' });
    expect(cache.accept('other', 'n1', 1000, 1001)).toEqual({ ok: true });
    cache.accept('c', 'n2', 1400, 1400); // expires n1 (its timestamp left the window)
    expect(cache.size('c')).toBe(1);
  });

  it('stays bounded and never lets an evicted nonce be replayed', () => {
    const cache = new NonceCache({ windowSeconds: 300, maxPerClient: 3 });
    for (const [i, n] of ['a', 'b', 'c', 'd'].entries()) expect(cache.accept('c', `nonce-${n}`, 1000 + i, 1000 + i).ok).toBe(true);
    expect(cache.size('c')).toBe(3);
    // nonce-a was evicted: its timestamp (1000) is now at or below the client's floor, so it is refused as stale
    expect(cache.accept('c', 'nonce-a', 1000, 1004)).toEqual({ ok: false, reason: 'stale' });
    expect(cache.accept('c', 'nonce-e', 1005, 1005).ok).toBe(true);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then refills at the rate and says when to retry', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 2, burst: 3, clock: () => now });
    expect([1, 2, 3].map(() => limiter.take('k').ok)).toEqual([true, true, true]);
    expect(limiter.take('k')).toEqual({ ok: false, retryAfterSeconds: 1 });
    now += 500;
    expect(limiter.take('k').ok).toBe(true);
    expect(limiter.take('other').ok).toBe(true);
  });

  it('refuses nonsense options', () => {
    expect(() => new RateLimiter({ ratePerSecond: 0, burst: 1, clock: Date.now })).toThrow(/ratePerSecond/);
    expect(() => new RateLimiter({ ratePerSecond: 1, burst: 0, clock: Date.now })).toThrow(/burst/);
  });

  it('keeps its key map bounded', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, clock: () => now, maxKeys: 10 });
    for (let i = 0; i < 100; i++) {
      now += 1;
      limiter.take(`k${i}`);
    }
    expect(limiter.size()).toBeLessThanOrEqual(10);
  });
});

describe('cursor', () => {
  it('round-trips for its client only', () => {
    const state = { w: 5, h: 10, p: 1, s: 7 };
    const text = encodeCursor('key', 'client-a', state);
    expect(decodeCursor('key', 'client-a', text)).toEqual(state);
    expect(() => decodeCursor('key', 'client-b', text)).toThrow(/not issued to this client/);
    expect(() => decodeCursor('other-key', 'client-a', text)).toThrow();
    expect(encodeCursor('key', 'client-a', { ...state, w: null })).not.toBe(text);
  });
});

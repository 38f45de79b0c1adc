/**
 * Retained-message limits (docs/security.md §Limits): per identity and in total, a replace counts only the difference,
 * an empty payload deletes and frees quota, an over-limit message is acknowledged but not retained (and the topic's
 * previous retained message goes too), counted and logged once per window. A property test checks the accounting
 * against a model over random retains, replaces and deletes; the broker tests use a real aedes and mqtt.js clients.
 */
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GATEWAY_OWNER, RetainedQuota, type RetainedLimits } from '../../src/broker/retained.js';
import { createLogger } from '../../src/log.js';
import { collect, sleep, user } from '../security/harness.js';
import { useBrokerTest } from './context.js';

const ctx = useBrokerTest();

describe('RetainedQuota accounting', () => {
  const limits: RetainedLimits = { maxMessages: 12, maxBytes: 600, maxMessagesPerIdentity: 5, maxBytesPerIdentity: 250 };
  const op = fc.record({
    topic: fc.constantFrom('a', 'b/c', 'dd', 'e/f/g', 'h', 'i', 'jj/k', 'l', 'm', 'n', 'o/p', 'q'),
    bytes: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 120 })),
    owner: fc.constantFrom('user:alice', 'user:bob', 'anonymous@loopback', GATEWAY_OWNER),
  });

  it('always equals the sum of what is retained, never exceeds a limit, and follows replace/delete/refuse rules', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const quota = new RetainedQuota(limits);
        const model = new Map<string, { bytes: number; owner: string }>();
        for (const { topic, bytes, owner } of ops) {
          const had = model.get(topic);
          const verdict = quota.apply(topic, bytes, owner);
          model.delete(topic); // a retained PUBLISH always replaces or removes what the topic had
          if (bytes === 0) expect(verdict).toBe(had ? 'deleted' : 'unchanged');
          else if (verdict === 'stored') model.set(topic, { bytes: bytes + Buffer.byteLength(topic), owner });
          else expect(verdict).toBe('refused');
          const all = [...model.values()];
          const sum = (list: typeof all) => ({ messages: list.length, bytes: list.reduce((n, e) => n + e.bytes, 0) });
          expect(quota.total()).toEqual(sum(all));
          expect(quota.total().messages).toBeLessThanOrEqual(limits.maxMessages);
          expect(quota.total().bytes).toBeLessThanOrEqual(limits.maxBytes);
          for (const who of ['user:alice', 'user:bob', 'anonymous@loopback', GATEWAY_OWNER]) {
            const mine = sum(all.filter((e) => e.owner === who));
            expect(quota.usage(who)).toEqual(mine);
            if (who !== GATEWAY_OWNER) {
              expect(mine.messages).toBeLessThanOrEqual(limits.maxMessagesPerIdentity);
              expect(mine.bytes).toBeLessThanOrEqual(limits.maxBytesPerIdentity);
            }
          }
          for (const [t, e] of model) expect(quota.ownerOf(t)).toBe(e.owner);
          if (verdict === 'refused') expect(quota.ownerOf(topic)).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses only what would go over: a replace counts the difference', () => {
    const quota = new RetainedQuota({ maxMessages: 100, maxBytes: 10_000, maxMessagesPerIdentity: 2, maxBytesPerIdentity: 1024 });
    expect(quota.apply('t1', 100, 'u')).toBe('stored');
    expect(quota.apply('t2', 100, 'u')).toBe('stored');
    expect(quota.apply('t3', 100, 'u')).toBe('refused'); // a third message
    expect(quota.apply('t1', 500, 'u')).toBe('stored'); // a replace: still two messages
    expect(quota.usage('u')).toEqual({ messages: 2, bytes: 500 + 2 + 100 + 2 });
    expect(quota.apply('t2', 2000, 'u')).toBe('refused'); // over the bytes: and t2's old message is gone
    expect(quota.usage('u')).toEqual({ messages: 1, bytes: 502 });
    expect(() => new RetainedQuota({ ...limits, maxBytes: 0 })).toThrow(/maxBytes must be an integer >= 1, given 0/);
  });
});

describe('retained limits in the broker', () => {
  it("keeps at most an identity's quota, acknowledges the rest, logs once, and frees quota on delete", async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
    const h = await ctx.start({
      auth: { users: [await user('alice', 'a'), await user('bob', 'b')], allowAnonymous: false },
      broker: { limits: { maxRetainedMessagesPerIdentity: 5, maxRetainedMessages: 8, errorLogIntervalMs: 60_000 } },
      logger: createLogger({ level: 'warn', destination: sink }),
    });
    const alice = await h.connect({ username: 'alice', password: 'a' });
    for (let i = 1; i <= 10; i += 1) await alice.publishAsync(`r/${i}`, `v${i}`, { qos: 1, retain: true }); // every one PUBACKed
    expect(alice.connected).toBe(true);
    expect(h.broker.retainedUsage('user:alice').messages).toBe(5);
    expect(h.broker.errorCounts().retained_limit).toBe(5);
    expect(lines.filter((l) => l.includes('"reason":"retained_limit"'))).toHaveLength(1);

    const reader = await h.connect({ username: 'bob', password: 'b' });
    const seen = collect(reader);
    await reader.subscribeAsync('r/#', { qos: 1 });
    await sleep(150);
    expect(seen.map((m) => m.topic).sort()).toEqual(['r/1', 'r/2', 'r/3', 'r/4', 'r/5']);

    await alice.publishAsync('r/1', 'v1 again', { qos: 1, retain: true }); // a replace at the cap: kept
    await alice.publishAsync('r/2', '', { qos: 1, retain: true }); // a delete frees one
    await alice.publishAsync('r/6', 'v6', { qos: 1, retain: true });
    expect(h.broker.retainedUsage('user:alice').messages).toBe(5);

    const bob = await h.connect({ username: 'bob', password: 'b', clientId: 'bob-2' });
    for (let i = 1; i <= 5; i += 1) await bob.publishAsync(`b/${i}`, 'x', { qos: 1, retain: true }); // total cap 8
    expect(h.broker.retainedUsage('user:bob').messages).toBe(3);
    expect(h.broker.retainedUsage().messages).toBe(8);

    const late = await h.connect({ username: 'bob', password: 'b', clientId: 'bob-3' });
    const fresh = collect(late);
    await late.subscribeAsync('r/#', { qos: 1 });
    await sleep(150);
    expect(fresh.map((m) => `${m.topic}=${m.payload}`).sort()).toEqual(['r/1=v1 again', 'r/3=v3', 'r/4=v4', 'r/5=v5', 'r/6=v6']);
  });

  it('removes the previous retained message when its replacement is over the limit', async () => {
    const h = await ctx.start({ broker: { limits: { maxRetainedBytesPerIdentity: 2048 } } });
    const c = await h.connect();
    await c.publishAsync('big/1', 'small', { qos: 1, retain: true });
    await c.publishAsync('big/1', 'x'.repeat(4000), { qos: 1, retain: true });
    const reader = await h.connect();
    const seen = collect(reader);
    await reader.subscribeAsync('big/#', { qos: 1 });
    await sleep(150);
    expect(seen).toEqual([]); // not the superseded 'small'
    expect(h.broker.retainedUsage()).toEqual({ messages: 0, bytes: 0 });
  });
});

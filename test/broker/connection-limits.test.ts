/**
 * One local process must not starve the broker (docs/security.md §Limits): per-identity and per-host connection caps
 * that apply to loopback too, and password checks throttled per host before any hashing, in turn across hosts.
 * Real aedes, real sockets, real scrypt where the cost is the point.
 */
import { describe, expect, it } from 'vitest';
import { AuthThrottle } from '../../src/broker/auth-throttle.js';
import { createBrokerAuth } from '../../src/broker/auth.js';
import { hashPassword, verifyPassword, type ParsedPasswordHash } from '../../src/broker/password.js';
import { silentLogger } from '../../src/log.js';
import { sleep, user } from '../security/harness.js';
import { useBrokerTest } from './context.js';
import { connackCode, connectPacket } from './raw.js';

const ctx = useBrokerTest();

/** Opens `n` raw sockets, each sending an anonymous CONNECT with keepalive 0; resolves with each one's fate. */
async function anonymousFlood(port: number, n: number): Promise<Array<number | 'closed'>> {
  const fates: Array<Promise<number | 'closed'>> = [];
  for (let i = 0; i < n; i += 1) {
    const r = await ctx.raw(port).catch(() => undefined);
    if (!r) {
      fates.push(Promise.resolve('closed'));
      continue;
    }
    r.send(connectPacket({ clientId: `hog-${i}`, keepalive: 0 }));
    fates.push(connackCode(r, 10_000).then((code) => code ?? 'closed'));
  }
  return Promise.all(fates);
}

describe('connection caps', () => {
  it('lets a real user in while 1,000 anonymous loopback sockets with keepalive 0 are open', async () => {
    const h = await ctx.start({ auth: { users: [await user('alice', 'a')] } }); // defaults: 1000 / 500 per host / 250 per identity
    const fates = await anonymousFlood(h.port, 1000);
    const accepted = fates.filter((f) => f === 0).length;
    expect(accepted).toBe(250); // the anonymous clients of one host are one identity
    expect(fates.filter((f) => f === 3).length).toBeGreaterThan(0); // CONNACK 3: the identity is full
    const alice = await h.connect({ username: 'alice', password: 'a', clientId: 'alice-phone' });
    expect(alice.connected).toBe(true);
    expect(h.broker.errorCounts().too_many_for_identity).toBeGreaterThan(0);
  }, 60_000);

  it('caps the connections of one identity (CONNACK 3), counting a takeover of its own id as a replacement', async () => {
    const h = await ctx.start({
      auth: { users: [await user('alice', 'a'), await user('bob', 'b')] },
      broker: { limits: { maxConnectionsPerIdentity: 2 } },
    });
    await h.connect({ username: 'alice', password: 'a', clientId: 'a-1' });
    await h.connect({ username: 'alice', password: 'a', clientId: 'a-2' });
    expect(await h.refusedCode({ username: 'alice', password: 'a', clientId: 'a-3' })).toBe(3);
    expect((await h.connect({ username: 'alice', password: 'a', clientId: 'a-2' })).connected).toBe(true); // takes a-2 over
    expect((await h.connect({ username: 'bob', password: 'b', clientId: 'b-1' })).connected).toBe(true);
    expect((await h.connect({ clientId: 'anon-1' })).connected).toBe(true);
    await sleep(50);
    expect(await h.refusedCode({ username: 'alice', password: 'a', clientId: 'a-4' })).toBe(3);
  });

  it('caps the sockets of one host, loopback included', async () => {
    const h = await ctx.start({ broker: { limits: { maxConnectionsPerAddress: 3 } } });
    for (let i = 0; i < 3; i += 1) await h.connect({ clientId: `c-${i}` });
    const fourth = await ctx.raw(h.port);
    expect(await fourth.closed(1000)).toBe(true);
    // 127.0.0.2 is the same machine: all of loopback is one host.
    const other = await ctx.raw(h.port, '127.0.0.2');
    expect(await other.closed(1000)).toBe(true);
    expect(h.broker.errorCounts().too_many_from_address).toBe(2);
  });
});

describe('password checks under attack', () => {
  it('refuses a host beyond its failure budget without hashing (CONNACK 5), and lets it back as the budget refills', async () => {
    let now = 0;
    let hashed = 0;
    const verify = (password: Buffer, hash: ParsedPasswordHash): Promise<boolean> => ((hashed += 1), verifyPassword(password, hash));
    const h = await ctx.start({
      auth: { users: [await user('alice', 'right')], allowAnonymous: false, verify, throttle: { failureBurst: 10, failuresPerMinute: 6, maxConcurrent: 2, maxPendingPerHost: 4, now: () => now } },
    });
    const codes = await Promise.all(Array.from({ length: 400 }, (_v, i) => h.refusedCode({ username: 'alice', password: `wrong-${i}`, clientId: `guess-${i}` })));
    expect(hashed).toBeLessThanOrEqual(10 + 4); // the burst, plus what was already waiting when it ran out
    expect(codes.filter((c) => c === 4).length).toBe(hashed); // each hashed attempt: bad password
    expect(codes.filter((c) => c === 5).length).toBe(400 - hashed); // the rest: refused before hashing
    const counts = h.broker.errorCounts();
    expect((counts.auth_throttled ?? 0) + (counts.auth_busy ?? 0)).toBe(400 - hashed);
    // The same host, right password, while throttled: refused unhashed. 10 s later (6/min) one attempt is allowed.
    expect(await h.refusedCode({ username: 'alice', password: 'right' })).toBe(5);
    now += 60_000;
    expect((await h.connect({ username: 'alice', password: 'right' })).connected).toBe(true);
  }, 30_000);

  it('checks another host promptly while one host floods wrong passwords (real scrypt cost)', async () => {
    const hash = await hashPassword('right'); // production parameters: N=16384
    let started = 0;
    const order: string[] = [];
    const auth = createBrokerAuth({
      logger: silentLogger(),
      users: [{ username: 'alice', passwordHash: hash }],
      verify: (password, parsed) => {
        started += 1;
        order.push(password.toString() === 'right' ? 'valid' : 'attack');
        return verifyPassword(password, parsed);
      },
    });
    const t0 = performance.now();
    await auth.checkConnect({ remoteAddress: '192.168.1.20', clientId: 'warm', username: 'alice', password: Buffer.from('right') });
    const oneCheck = performance.now() - t0;
    const flood = Array.from({ length: 400 }, (_v, i) =>
      auth.checkConnect({ remoteAddress: '192.168.1.66', clientId: `g-${i}`, username: 'alice', password: Buffer.from(`wrong-${i}`) }),
    );
    const t1 = performance.now();
    const valid = await auth.checkConnect({ remoteAddress: '192.168.1.20', clientId: 'phone', username: 'alice', password: Buffer.from('right') });
    const waited = performance.now() - t1;
    await Promise.all(flood);
    expect(valid.ok).toBe(true);
    // Structural: the valid check started after at most the attacker's checks already running (maxConcurrent 2).
    expect(order.slice(1).indexOf('valid')).toBeLessThanOrEqual(2);
    expect(started).toBeLessThanOrEqual(1 + 1 + 4); // warm-up, valid, and the attacker's pending bound
    console.log(`auth under flood: valid check ${waited.toFixed(0)} ms, one check alone ${oneCheck.toFixed(0)} ms, ${started} scrypt runs for 402 attempts`);
    expect(waited).toBeLessThan(oneCheck * 10 + 200);
  }, 60_000);

  it('AuthThrottle: round-robin across hosts, a pending bound per host, a failure bucket per host', async () => {
    let now = 0;
    const throttle = new AuthThrottle({ failureBurst: 2, failuresPerMinute: 60, maxConcurrent: 1, maxPendingPerHost: 3, now: () => now });
    const ran: string[] = [];
    const releases: Array<() => void> = [];
    const job = (host: string, ok: boolean) => () => new Promise<boolean>((resolve) => (ran.push(host), releases.push(() => resolve(ok))));
    const a = [throttle.verify('a', job('a', false)), throttle.verify('a', job('a', false)), throttle.verify('a', job('a', true))];
    expect(await throttle.verify('a', job('a', true))).toBe('auth_busy'); // 3 pending already
    const b = throttle.verify('b', job('b', true));
    const drain = async (): Promise<void> => {
      while (releases.length > 0 || throttle.running > 0) {
        releases.shift()?.();
        await sleep(1);
      }
    };
    await drain();
    expect(await Promise.all([...a, b])).toEqual([false, false, true, true]);
    expect(ran).toEqual(['a', 'b', 'a', 'a']); // b did not wait behind a's queue
    expect(throttle.refusal('a')).toBe('auth_throttled'); // two failures: the burst
    now += 1000; // 60/min: one token back
    expect(throttle.refusal('a')).toBeUndefined();
    expect(throttle.refusal('b')).toBeUndefined();
  });
});

/**
 * Session takeover (docs/security.md §Sessions and client ids): a stored session is resumed only by the identity that
 * created it, a takeover by another identity gets CONNACK 5 and leaves the owner connected, client ids can be tied to
 * users. Real aedes, real mqtt.js clients, real ingest into SQLite (test/security/harness.ts).
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { SessionOwners } from '../../src/broker/sessions.js';
import { compileClientIdRules } from '../../src/broker/client-ids.js';
import { collect, sleep, user, type SecureHarness } from '../security/harness.js';
import { useBrokerTest } from './context.js';

const ctx = useBrokerTest();

const UNLOCK = { topic: 'devices/alice/set', payload: Buffer.from('UNLOCK-front-door'), qos: 1 as const, retain: false };

async function start(extra: { userClientIds?: string[]; clientIds?: string[] } = {}): Promise<SecureHarness> {
  return ctx.start({
    auth: {
      users: [{ ...(await user('alice', 'a')), ...(extra.clientIds ? { clientIds: extra.clientIds } : {}) }, await user('bob', 'b')],
      ...(extra.userClientIds ? { userClientIds: extra.userClientIds } : {}),
      acl: [
        { publish: ['devices/%u/#'], subscribe: ['devices/%u/set'] },
        { anonymous: true, publish: ['x/#'], subscribe: ['x/#'] },
      ],
    },
  });
}

function closedSoon(client: MqttClient, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    client.once('close', () => (clearTimeout(t), resolve(true)));
  });
}

describe('session ownership', () => {
  it("refuses an anonymous client that asks for a device's stored session (CONNACK 5); the device gets its queued command", async () => {
    const h = await start();
    const lock = await h.connect({ clientId: 'lock-1', clean: false, username: 'alice', password: 'a' });
    await lock.subscribeAsync('devices/alice/set', { qos: 1 });
    await lock.endAsync();
    await h.broker.publish(UNLOCK); // queued for the offline session
    // The tester's attack: mosquitto_sub -i lock-1 -c -q1 -t x/y
    expect(await h.refusedCode({ clientId: 'lock-1', clean: false })).toBe(5);
    expect(await h.refusedCode({ clientId: 'lock-1', clean: true })).toBe(5); // a clean start would wipe the session
    expect(await h.refusedCode({ clientId: 'lock-1', clean: false, username: 'bob', password: 'b' })).toBe(5);
    expect(h.broker.errorCounts().session_owned_by_other).toBe(3);
    const back = await h.connect({ clientId: 'lock-1', clean: false, username: 'alice', password: 'a' });
    const got = await new Promise<string>((resolve) => back.once('message', (_t, p) => resolve(p.toString())));
    expect(got).toBe('UNLOCK-front-door');
  });

  it('leaves the owner connected when another identity tries its client id, and still delivers to it', async () => {
    const h = await start();
    const lock = await h.connect({ clientId: 'lock-1', clean: true, username: 'alice', password: 'a' });
    const seen = collect(lock);
    await lock.subscribeAsync('devices/alice/set', { qos: 1 });
    const kicked = closedSoon(lock, 500);
    expect(await h.refusedCode({ clientId: 'lock-1' })).toBe(5);
    expect(await kicked).toBe(false);
    expect(lock.connected).toBe(true);
    await h.broker.publish(UNLOCK);
    await sleep(100);
    expect(seen.map((m) => m.payload)).toEqual(['UNLOCK-front-door']);
  });

  it('lets the same identity take its session over (a device reconnecting over a half-open connection)', async () => {
    const h = await start();
    const old = await h.connect({ clientId: 'lock-1', clean: false, username: 'alice', password: 'a' });
    await old.subscribeAsync('devices/alice/set', { qos: 1 });
    const kicked = closedSoon(old, 2000);
    const fresh = await h.connect({ clientId: 'lock-1', clean: false, username: 'alice', password: 'a' });
    expect(await kicked).toBe(true); // MQTT-3.1.4-2
    const seen = collect(fresh);
    await h.broker.publish(UNLOCK);
    await sleep(100);
    expect(seen.map((m) => m.payload)).toEqual(['UNLOCK-front-door']); // the subscription came with the session
  });

  it('frees the client id once a clean session ends', async () => {
    const h = await start();
    const lock = await h.connect({ clientId: 'shared-1', clean: true, username: 'alice', password: 'a' });
    await lock.endAsync();
    await sleep(50);
    const anon = await h.connect({ clientId: 'shared-1' });
    expect(anon.connected).toBe(true);
  });

  it('SessionOwners: owner kept while live or stored, released by a clean session of the owner', () => {
    const owners = new SessionOwners();
    const a = owners.claim('c1', 'user:alice', false);
    expect(a.ok).toBe(true);
    expect(owners.claim('c1', 'anonymous@loopback', true).ok).toBe(false);
    if (a.ok) a.release();
    expect(owners.ownerOf('c1')).toBe('user:alice'); // stored: clean session 0
    expect(owners.claim('c1', 'user:bob', false).ok).toBe(false);
    const again = owners.claim('c1', 'user:alice', true); // a clean start of the owner ends the stored session
    expect(again.ok).toBe(true);
    if (again.ok) again.release();
    expect(owners.ownerOf('c1')).toBeUndefined();
    expect(owners.size).toBe(0);
    expect(owners.claim('c1', 'user:bob', false).ok).toBe(true);
  });
});

describe('client ids tied to users', () => {
  it("refuses a user's CONNECT with an id outside its patterns, and anyone else's with an id inside them (CONNACK 2)", async () => {
    const h = await start({ clientIds: ['%u-*'], userClientIds: ['%u'] });
    expect(await h.refusedCode({ clientId: 'lock-1', username: 'alice', password: 'a' })).toBe(2);
    expect(await h.refusedCode({ clientId: 'alice-lock' })).toBe(2); // reserved for alice, even before she connects
    expect(await h.refusedCode({ clientId: 'alice-lock', username: 'bob', password: 'b' })).toBe(2);
    expect(await h.refusedCode({ clientId: 'bobby', username: 'bob', password: 'b' })).toBe(2); // userClientIds: "%u"
    expect((await h.connect({ clientId: 'alice-lock', username: 'alice', password: 'a' })).connected).toBe(true);
    expect((await h.connect({ clientId: 'bob', username: 'bob', password: 'b' })).connected).toBe(true);
    expect((await h.connect({ clientId: 'lamp-7' })).connected).toBe(true); // nobody's
    expect(h.broker.errorCounts()).toMatchObject({ client_id_not_allowed: 3, client_id_reserved: 1 });
  });

  it('patterns: * is any run, %u the name, everything else literal', () => {
    const rules = compileClientIdRules([{ username: 'a.b', clientIds: ['%u', 'dev-%u-*'] }, { username: 'c' }]);
    expect(rules.problem('a.b', 'a.b')).toBeUndefined();
    expect(rules.problem('a.b', 'axb')).toBe('not_allowed'); // '.' is literal
    expect(rules.problem('a.b', 'dev-a.b-')).toBeUndefined();
    expect(rules.problem('a.b', 'dev-a.b-kitchen/x')).toBeUndefined();
    expect(rules.problem('c', 'dev-a.b-1')).toBe('reserved');
    expect(rules.problem(undefined, 'a.b')).toBe('reserved');
    expect(rules.problem('c', 'anything')).toBeUndefined();
    expect(() => compileClientIdRules([{ username: 'x', clientIds: ['**'] }])).toThrow(/only \*/);
  });
});

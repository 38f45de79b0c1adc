/**
 * Broker authentication and ACLs through a real aedes broker, real mqtt.js clients and real ingest into SQLite
 * (docs/security.md §Who may connect, §Topic ACL: refusals follow MQTT).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createBrokerAuth, isLoopbackAddress } from '../../src/broker/auth.js';
import { silentLogger } from '../../src/log.js';
import { collect, sleep, startSecureHarness, subackCodes, user, type SecureHarness } from './harness.js';

let h: SecureHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('connect', () => {
  it('refuses an anonymous client with CONNACK 5 when anonymous access is off, accepts it from loopback by default', async () => {
    h = await startSecureHarness({ auth: { users: [await user('alice', 'pw')], allowAnonymous: false } });
    expect(await h.refusedCode({ clientId: 'anon-1' })).toBe(5);
    expect(h.broker.errorCounts().anonymous_refused).toBe(1);
    await h.close();
    h = await startSecureHarness({ auth: { users: [await user('alice', 'pw')] } }); // allowAnonymous: 'loopback'
    const c = await h.connect({ clientId: 'anon-2' });
    expect(c.connected).toBe(true);
  });

  it("refuses an anonymous client from a non-loopback address under the default 'loopback' policy", async () => {
    const auth = createBrokerAuth({ logger: silentLogger() });
    const from = (remoteAddress: string) => auth.checkConnect({ remoteAddress, clientId: 'c', username: undefined, password: undefined });
    expect(await from('192.168.1.20')).toMatchObject({ ok: false, returnCode: 5, reason: 'anonymous_refused' });
    expect(await from('::ffff:10.0.0.3')).toMatchObject({ ok: false, returnCode: 5 });
    expect(await from('127.0.0.1')).toMatchObject({ ok: true });
    expect(await from('::1')).toMatchObject({ ok: true });
    const open = createBrokerAuth({ logger: silentLogger(), allowAnonymous: true });
    expect(await open.checkConnect({ remoteAddress: '192.168.1.20', clientId: 'c', username: undefined, password: undefined })).toMatchObject({ ok: true });
    expect(isLoopbackAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('128.0.0.1')).toBe(false);
    expect(isLoopbackAddress(undefined)).toBe(false);
  });

  it('answers a bad password or an unknown user with CONNACK 4, and accepts the right password', async () => {
    h = await startSecureHarness({ auth: { users: [await user('alice', 'right')], allowAnonymous: false } });
    expect(await h.refusedCode({ username: 'alice', password: 'wrong' })).toBe(4);
    expect(await h.refusedCode({ username: 'mallory', password: 'right' })).toBe(4);
    expect(await h.refusedCode({ username: 'alice' })).toBe(4);
    expect(h.broker.errorCounts().bad_credentials).toBe(3);
    const c = await h.connect({ username: 'alice', password: 'right' });
    expect(c.connected).toBe(true);
  });
});

describe('acl', () => {
  async function start(): Promise<SecureHarness> {
    return startSecureHarness({
      auth: {
        users: [await user('alice', 'a'), await user('watcher', 'w')],
        allowAnonymous: false,
        acl: [
          { publish: ['devices/%u/#'], subscribe: ['devices/%u/set'] },
          { users: ['watcher'], subscribe: ['devices/#'] },
        ],
      },
    });
  }

  it('drops a publish the ACL denies: acknowledged, not delivered, not stored, connection kept', async () => {
    h = await start();
    const watcher = await h.connect({ username: 'watcher', password: 'w' });
    const seen = collect(watcher);
    await watcher.subscribeAsync('devices/#', { qos: 1 });
    const alice = await h.connect({ username: 'alice', password: 'a' });
    // Not hers: QoS 1 is PUBACKed (MQTT 3.1.1 §3.3.5) …
    await alice.publishAsync('devices/bob/state', JSON.stringify({ on: true }), { qos: 1 });
    await alice.publishAsync('devices/bob/state', JSON.stringify({ on: false }), { qos: 0, retain: true });
    // … and her own topic still works on the same connection (%u).
    await alice.publishAsync('devices/alice/state', JSON.stringify({ on: true }), { qos: 1 });
    await sleep(150);
    expect(alice.connected).toBe(true);
    expect(seen.map((m) => m.topic)).toEqual(['devices/alice/state']);
    expect(await h.storedState('bob')).toBeUndefined();
    expect(await h.storedState('alice')).toEqual({ on: true });
    expect(h.broker.errorCounts().acl_publish_denied).toBe(2);
    // The denied retained message was not retained either.
    const late = await h.connect({ username: 'watcher', password: 'w' });
    const lateSeen = collect(late);
    await late.subscribeAsync('devices/bob/#', { qos: 1 });
    await sleep(100);
    expect(lateSeen).toEqual([]);
  });

  it('grants 0x80 to a denied subscription and keeps the connection and the allowed filters', async () => {
    h = await start();
    const alice = await h.connect({ username: 'alice', password: 'a' });
    const granted = await subackCodes(alice, { 'devices/alice/set': { qos: 1 }, 'devices/+/set': { qos: 1 }, '#': { qos: 0 } });
    expect(granted).toEqual([1, 128, 128]);
    expect(alice.connected).toBe(true);
    const seen = collect(alice);
    await h.broker.publish({ topic: 'devices/alice/set', payload: Buffer.from('{"on":false}'), qos: 1, retain: false });
    await h.broker.publish({ topic: 'devices/bob/set', payload: Buffer.from('{"on":false}'), qos: 1, retain: false });
    await sleep(100);
    expect(seen.map((m) => m.topic)).toEqual(['devices/alice/set']);
    expect(h.broker.errorCounts().acl_subscribe_denied).toBe(2);
  });

  it('keeps the sink of dropped messages unsubscribable, even without ACLs', async () => {
    h = await startSecureHarness({ broker: { limits: { maxPayloadBytes: 16 } } });
    const spy = await h.connect();
    expect(await subackCodes(spy, { '$DROPPED/#': { qos: 0 }, '$DROPPED/refused': { qos: 0 }, 'other/#': { qos: 0 } })).toEqual([128, 128, 0]);
    expect(spy.connected).toBe(true);
  });
});

/**
 * Attacker-controlled strings are clipped in log lines, client ids are bounded, and `$SYS/…` (every client id and
 * subscription) is not readable without an ACL rule that allows it. Real aedes, real clients.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { clip } from '../../src/broker/log-fields.js';
import { createLogger } from '../../src/log.js';
import { collect, sleep, subackCodes, user } from '../security/harness.js';
import { useBrokerTest } from './context.js';
import { connackCode, connectPacket, publishPacket } from './raw.js';

const ctx = useBrokerTest();

function sink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  return { lines, stream: new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) }) };
}

describe('client-supplied strings in logs', () => {
  it('clips 60 KB client ids, usernames and topics in every log line', async () => {
    const log = sink();
    const h = await ctx.start({
      auth: { users: [await user('alice', 'a')], allowAnonymous: false, acl: [{ publish: ['devices/%u/#'] }] },
      broker: { limits: { maxClientIdBytes: 65_535, errorLogIntervalMs: 0 } },
      logger: createLogger({ level: 'debug', destination: log.stream }),
    });
    const huge = 'x'.repeat(60_000);
    const anon = await ctx.raw(h.port);
    anon.send(connectPacket({ clientId: huge }));
    expect(await connackCode(anon)).toBe(5);
    const named = await ctx.raw(h.port);
    named.send(connectPacket({ clientId: 'c-1', username: huge, password: 'nope' }));
    expect(await connackCode(named)).toBe(4);
    const alice = await ctx.raw(h.port);
    alice.send(connectPacket({ clientId: `alice-${'y'.repeat(60_000)}`, username: 'alice', password: 'a' }));
    expect(await connackCode(alice)).toBe(0);
    alice.send(publishPacket(`devices/bob/${huge}`, '{}', 0));
    await sleep(100);
    expect(h.broker.errorCounts()).toMatchObject({ anonymous_refused: 1, bad_credentials: 1, acl_publish_denied: 1 });
    expect(log.lines.length).toBeGreaterThanOrEqual(3);
    for (const line of log.lines) expect(line.length).toBeLessThan(2048);
  });

  it('refuses a client id longer than maxClientIdBytes with CONNACK 2 (any protocol version)', async () => {
    const h = await ctx.start({ auth: {} });
    const r = await ctx.raw(h.port);
    r.send(connectPacket({ clientId: 'z'.repeat(257) }));
    expect(await connackCode(r)).toBe(2);
    expect(await r.closed()).toBe(true);
    const ok = await h.connect({ clientId: 'z'.repeat(256) });
    expect(ok.connected).toBe(true);
    expect(h.broker.errorCounts().client_id_too_long).toBe(1);
  });

  it('clip keeps short values and says how much it left out', () => {
    expect(clip('short')).toBe('short');
    expect(clip(undefined)).toBeUndefined();
    expect(clip('a'.repeat(200), 10)).toBe('aaaaaaaaaa…(+190 chars)');
  });
});

describe('$SYS', () => {
  it('is not readable by anyone without an ACL (SUBACK 0x80); other filters are unaffected', async () => {
    const h = await ctx.start({ auth: {} }); // the gateway's defaults
    const spy = await h.connect({ clientId: 'spy' });
    const seen = collect(spy);
    expect(await subackCodes(spy, { '$SYS/#': { qos: 0 }, '$SYS/+/new/clients': { qos: 0 }, 'other/#': { qos: 0 } })).toEqual([128, 128, 0]);
    await h.connect({ clientId: 'victim-lock-1' });
    await sleep(100);
    expect(seen).toEqual([]);
    expect(spy.connected).toBe(true);
  });

  it('is readable where an ACL rule allows it by name', async () => {
    const h = await ctx.start({
      auth: { users: [await user('admin', 'x')], acl: [{ users: ['admin'], subscribe: ['$SYS/#'] }, { anonymous: true, subscribe: ['#'] }] },
    });
    const anon = await h.connect({ clientId: 'anon' });
    expect(await subackCodes(anon, { '$SYS/#': { qos: 0 } })).toEqual([128]); // '#' does not cover $SYS (MQTT-4.7.2-1)
    const admin = await h.connect({ username: 'admin', password: 'x' });
    const seen = collect(admin);
    expect(await subackCodes(admin, { '$SYS/#': { qos: 0 } })).toEqual([0]);
    await h.connect({ clientId: 'lamp-9' });
    await sleep(100);
    expect(seen.some((m) => m.topic.endsWith('/new/clients') && m.payload === 'lamp-9')).toBe(true);
  });
});

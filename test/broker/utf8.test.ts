/**
 * Ill-formed UTF-8 and U+0000 in MQTT strings close the connection (MQTT-1.5.3-1, MQTT-1.5.3-2):
 * topic names, topic filters, client ids, usernames, will topics. mqtt-packet turns bad bytes into U+FFFD
 * silently, so the raw bytes are checked (packet-scan.ts). Real aedes, raw sockets.
 */
import { describe, expect, it } from 'vitest';
import { PacketScanner, mqttStringProblem } from '../../src/broker/packet-scan.js';
import { collect, sleep } from '../security/harness.js';
import { useBrokerTest } from './context.js';
import { PUBACK, SUBACK, UNSUBACK, CONNACK, connackCode, connectPacket, publishPacket, subscribePacket, unsubscribePacket, type RawClient } from './raw.js';

const ctx = useBrokerTest();

const BAD: Record<string, Buffer> = {
  'a lone 0xFF byte': Buffer.from([0x64, 0x2f, 0xff]),
  'U+0000': Buffer.from('d/a\u0000b'),
  'an encoded surrogate U+D800': Buffer.from([0x64, 0x2f, 0xed, 0xa0, 0x80]),
  'a truncated 4-byte sequence (as long as one U+FFFD)': Buffer.from([0x64, 0x2f, 0xf0, 0x9f, 0x98, 0x78]),
  'an overlong "/"': Buffer.from([0x64, 0xc0, 0xaf]),
};

async function connected(port: number, clientId: string): Promise<RawClient> {
  const r = await ctx.raw(port);
  r.send(connectPacket({ clientId }));
  expect(await connackCode(r)).toBe(0);
  return r;
}

describe('ill-formed strings close the connection', () => {
  for (const [name, topic] of Object.entries(BAD)) {
    it(`PUBLISH with ${name} in the topic: closed, no PUBACK, not delivered`, async () => {
      const h = await ctx.start();
      const watcher = await h.connect();
      const seen = collect(watcher);
      await watcher.subscribeAsync('#', { qos: 1 });
      const r = await connected(h.port, 'bad-pub');
      r.send(publishPacket(topic, '{"on":true}', 1, 7));
      expect(await r.closed()).toBe(true);
      expect(r.packets.filter((p) => p.type === PUBACK)).toEqual([]);
      await sleep(50);
      expect(seen).toEqual([]);
      expect(h.broker.errorCounts().invalid_string).toBe(1);
      expect(watcher.connected).toBe(true);
    });
  }

  it('SUBSCRIBE and UNSUBSCRIBE with an ill-formed filter: closed, no SUBACK / UNSUBACK', async () => {
    const h = await ctx.start();
    const sub = await connected(h.port, 'bad-sub');
    sub.send(subscribePacket([['ok/#', 1], [Buffer.from([0x61, 0x2f, 0xc3]), 1]], 3));
    expect(await sub.closed()).toBe(true);
    expect(sub.packets.filter((p) => p.type === SUBACK)).toEqual([]);
    const unsub = await connected(h.port, 'bad-unsub');
    unsub.send(unsubscribePacket([Buffer.from('x\u0000')], 4));
    expect(await unsub.closed()).toBe(true);
    expect(unsub.packets.filter((p) => p.type === UNSUBACK)).toEqual([]);
    expect(h.broker.errorCounts().invalid_string).toBe(2);
  });

  it('CONNECT with an ill-formed client id, username or will topic: closed without a CONNACK', async () => {
    const h = await ctx.start({ auth: { allowAnonymous: true } });
    const cases = [
      connectPacket({ clientId: Buffer.from([0x63, 0xff]) }),
      connectPacket({ clientId: 'u-1', username: Buffer.from([0x75, 0x00]), password: 'x' }),
      connectPacket({ clientId: 'w-1', will: { topic: Buffer.from([0xed, 0xbf, 0xbf]), payload: 'gone' } }),
    ];
    for (const bytes of cases) {
      const r = await ctx.raw(h.port);
      r.send(bytes);
      expect(await r.closed()).toBe(true);
      expect(r.packets.filter((p) => p.type === CONNACK)).toEqual([]);
    }
    expect(h.broker.errorCounts().invalid_string).toBe(3);
  });

  it('accepts well-formed non-ASCII, including a real U+FFFD, and binary payloads', async () => {
    const h = await ctx.start();
    const watcher = await h.connect();
    const seen = collect(watcher);
    await watcher.subscribeAsync('#', { qos: 1 });
    const r = await connected(h.port, 'good-pub');
    r.send(publishPacket('wohnzimmer/tür/\uFFFD/😀', '\u0000\u00ff binary ok', 1, 9));
    expect(await r.next(PUBACK)).toBeDefined();
    await sleep(50);
    expect(seen.map((m) => m.topic)).toEqual(['wohnzimmer/tür/\uFFFD/😀']);
    expect(h.broker.errorCounts().invalid_string).toBeUndefined();
  });
});

describe('PacketScanner strings', () => {
  it('finds a bad topic whatever the chunking, and lets good packets through unchanged', () => {
    const good = publishPacket('a/b', 'payload \u00ff', 1, 1);
    const bad = publishPacket(Buffer.from([0x61, 0xff]), 'x', 0);
    const stream = Buffer.concat([good, good, bad]);
    for (const size of [1, 2, 3, 7, stream.length]) {
      const scanner = new PacketScanner(1024);
      const verdicts = [];
      for (let i = 0; i < stream.length; i += size) verdicts.push(scanner.feed(stream.subarray(i, i + size)));
      const found = verdicts.filter((v) => v !== undefined);
      expect(found).toEqual([{ kind: 'bad_string', field: 'topic name', problem: 'ill-formed UTF-8 (MQTT-1.5.3-1)' }]);
    }
    expect(mqttStringProblem(Buffer.from('ok/\uFFFD'))).toBeUndefined();
    expect(mqttStringProblem(Buffer.from([0]))).toMatch(/U\+0000/);
  });
});

/**
 * MQTT 3.1.1 behaviours the Eclipse Paho interoperability suite (client_test.py) checks, on the gateway's default
 * broker settings (anonymous from loopback, no ACL) unless a test says otherwise, plus the two aedes bugs the broker
 * layer fixes (zero-length client id with clean session 0, delivery at the granted QoS) and deny rules. Real aedes,
 * real mqtt.js clients, raw sockets where exact bytes matter.
 */
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { collect, sleep, subackCodes, type SecureHarnessOptions } from '../security/harness.js';
import { useBrokerTest } from './context.js';
import { CONNACK, PUBLISH, connackCode, connectPacket, subscribePacket, type RawClient } from './raw.js';

const ctx = useBrokerTest();

/** The gateway's defaults: anonymous from loopback, no users, no ACL. */
const DEFAULTS: SecureHarnessOptions = { auth: {} };
const DENY_NOSUBSCRIBE: SecureHarnessOptions = {
  auth: { acl: [{ anonymous: true, publish: ['#'], subscribe: ['#'], deny: { subscribe: ['test/nosubscribe'] } }] },
};

const raw = (port: number): Promise<RawClient> => ctx.raw(port);

function packets(client: MqttClient): IPublishPacket[] {
  const got: IPublishPacket[] = [];
  client.on('message', (_t, _p, packet) => got.push(packet));
  return got;
}

describe('Paho interoperability behaviours', () => {
  it('basic: QoS 0/1/2 round trip; a second CONNECT or a wrong protocol name closes the connection', async () => {
    const h = await ctx.start(DEFAULTS);
    const c = await h.connect({ clientId: 'myclientid' });
    const got = collect(c);
    await c.subscribeAsync('TopicA', { qos: 2 });
    for (const qos of [0, 1, 2] as const) await c.publishAsync('TopicA', `qos ${qos}`, { qos });
    await sleep(200);
    expect(got.map((m) => m.payload).sort()).toEqual(['qos 0', 'qos 1', 'qos 2']);
    const twice = await raw(h.port);
    twice.send(connectPacket({ clientId: 'twice' }));
    expect(await connackCode(twice)).toBe(0);
    twice.send(connectPacket({ clientId: 'twice' })); // MQTT-3.1.0-2
    expect(await twice.closed()).toBe(true);
    const wrong = await raw(h.port);
    const bad = connectPacket({ clientId: 'hj' });
    bad.write('hj', 4); // protocol name "hjTT": MQTT-3.1.2-1
    wrong.send(bad);
    expect(await wrong.closed()).toBe(true);
    expect(wrong.packets.filter((p) => p.type === CONNACK && p.body[1] === 0)).toEqual([]);
  });

  it('retained messages: kept per topic at every QoS, and deleted by an empty retained payload', async () => {
    const h = await ctx.start(DEFAULTS);
    const a = await h.connect({ clientId: 'myclientid' });
    await a.publishAsync('TopicA/B', 'qos 0', { qos: 0, retain: true });
    await a.publishAsync('Topic/C', 'qos 1', { qos: 1, retain: true });
    await a.publishAsync('TopicA/C', 'qos 2', { qos: 2, retain: true });
    await sleep(100);
    const b = await h.connect();
    const got = packets(b);
    await b.subscribeAsync('+/+', { qos: 2 });
    await sleep(200);
    expect(got.map((p) => [p.topic, p.retain]).sort()).toEqual([['Topic/C', true], ['TopicA/B', true], ['TopicA/C', true]]);
    for (const topic of ['TopicA/B', 'Topic/C', 'TopicA/C']) await a.publishAsync(topic, '', { qos: 1, retain: true });
    const c = await h.connect();
    const none = collect(c);
    await c.subscribeAsync('+/+', { qos: 2 });
    await sleep(200);
    expect(none).toEqual([]);
  });

  it('zero-length client id: refused with CONNACK 2 and closed under clean session 0 (MQTT-3.1.3-8), accepted under 1', async () => {
    const h = await ctx.start(DEFAULTS);
    const persistent = await raw(h.port);
    persistent.send(connectPacket({ clientId: '', clean: false }));
    expect(await connackCode(persistent)).toBe(2);
    expect(await persistent.closed()).toBe(true);
    const clean = await raw(h.port);
    clean.send(connectPacket({ clientId: '', clean: true }));
    expect(await connackCode(clean)).toBe(0);
    expect(h.broker.errorCounts().empty_client_id_persistent).toBe(1);
  });

  it('offline message queueing: QoS 1 and 2 messages wait for a persistent session; the session is present', async () => {
    const h = await ctx.start(DEFAULTS);
    const a = await h.connect({ clientId: 'myclientid', clean: false });
    await a.subscribeAsync('+/+', { qos: 2 });
    await a.endAsync();
    const b = await h.connect({ clientId: 'myclientid2' });
    for (const qos of [0, 1, 2] as const) await b.publishAsync(['TopicA/B', 'Topic/C', 'TopicA/C'][qos] ?? '', `qos ${qos}`, { qos });
    const again = mqtt.connect(`mqtt://127.0.0.1:${h.port}`, { clientId: 'myclientid', clean: false, reconnectPeriod: 0 });
    const got = packets(again);
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => again.once('connect', resolve));
    expect(connack.sessionPresent).toBe(true);
    await sleep(300);
    expect(got.map((p) => p.payload.toString()).sort()).toEqual(['qos 1', 'qos 2']);
    await again.endAsync();
  });

  it('overlapping subscriptions: one message at the highest QoS of the matching subscriptions (MQTT-3.3.5-1)', async () => {
    const h = await ctx.start(DEFAULTS);
    const a = await h.connect();
    const got = packets(a);
    await a.subscribeAsync({ 'TopicA/#': { qos: 2 }, 'TopicA/+': { qos: 1 } });
    await a.publishAsync('TopicA/C', 'overlapping topic filters', { qos: 2 });
    await sleep(300);
    expect(got.map((p) => p.qos)).toEqual([2]);
  });

  it('overlapping subscriptions with a QoS 0 one: still one message at the highest granted QoS, whatever the order', async () => {
    const h = await ctx.start(DEFAULTS);
    const a = await h.connect();
    const got = packets(a);
    await a.subscribeAsync({ 'up/#': { qos: 2 } });
    await a.subscribeAsync({ 'up/+': { qos: 0 } });
    await a.subscribeAsync({ 'down/#': { qos: 0 } }); // aedes's matcher fires '#' first: the QoS 0 one
    await a.subscribeAsync({ 'down/+': { qos: 1 } });
    await a.publishAsync('up/x', 'up', { qos: 2 });
    await a.publishAsync('down/x', 'down', { qos: 2 });
    await sleep(300);
    expect(got.map((p) => [p.payload.toString(), p.qos]).sort()).toEqual([['down', 1], ['up', 2]]);
  });

  it('keepalive: a client silent for 1.5 × its keepalive is disconnected and its will published', async () => {
    const h = await ctx.start(DEFAULTS);
    const b = await h.connect({ keepalive: 0 });
    const got = collect(b);
    await b.subscribeAsync('/TopicA', { qos: 2 });
    const silent = await raw(h.port); // never sends PINGREQ
    silent.send(connectPacket({ clientId: 'silent-1', keepalive: 1, will: { topic: '/TopicA', payload: 'keepalive expiry', qos: 1 } }));
    expect(await connackCode(silent)).toBe(0);
    expect(await silent.closed(4000)).toBe(true); // MQTT-3.1.2-24
    await sleep(100);
    expect(got).toEqual([{ topic: '/TopicA', payload: 'keepalive expiry' }]);
  });

  it('will message: published when the connection drops without DISCONNECT', async () => {
    const h = await ctx.start(DEFAULTS);
    const b = await h.connect({ clientId: 'myclientid2', clean: false });
    const got = collect(b);
    await b.subscribeAsync('Topic/C', { qos: 2 });
    const a = await raw(h.port);
    a.send(connectPacket({ clientId: 'myclientid', will: { topic: 'Topic/C', payload: 'client not disconnected', qos: 2 } }));
    expect(await connackCode(a)).toBe(0);
    a.socket.destroy();
    await sleep(300);
    expect(got).toEqual([{ topic: 'Topic/C', payload: 'client not disconnected' }]);
  });

  it('redelivery on reconnect: unacknowledged QoS 1 and 2 messages are sent again to the resumed session', async () => {
    const h = await ctx.start(DEFAULTS);
    const first = await raw(h.port);
    first.send(connectPacket({ clientId: 'myclientid2', clean: false }));
    expect(await connackCode(first)).toBe(0);
    first.send(subscribePacket([['TopicA/#', 2]], 1));
    const publisher = await h.connect();
    await publisher.publishAsync('TopicA/B', 'one', { qos: 1 });
    await publisher.publishAsync('TopicA/C', 'two', { qos: 2 });
    expect(await first.next(PUBLISH)).toBeDefined(); // received, never acknowledged
    first.socket.destroy();
    await sleep(100);
    const second = await raw(h.port);
    second.send(connectPacket({ clientId: 'myclientid2', clean: false }));
    expect((await second.next(CONNACK))?.body[0]).toBe(1); // session present
    const again = [await second.next(PUBLISH), await second.next(PUBLISH)];
    const topics = again.map((p) => (p ? p.body.subarray(2, 2 + p.body.readUInt16BE(0)).toString() : undefined));
    expect(topics.sort()).toEqual(['TopicA/B', 'TopicA/C']);
  });

  it('subscribe failure: a denied filter gets 0x80 (with an ACL that denies test/nosubscribe)', async () => {
    const h = await ctx.start(DENY_NOSUBSCRIBE);
    const a = await h.connect();
    expect(await subackCodes(a, { 'test/nosubscribe': { qos: 2 } })).toEqual([0x80]);
    expect(await subackCodes(a, { 'test/other': { qos: 2 } })).toEqual([2]);
    expect(a.connected).toBe(true);
  });

  it('$ topics: a filter starting with a wildcard does not match topics starting with $ (MQTT-4.7.2-1)', async () => {
    const h = await ctx.start(DEFAULTS);
    const b = await h.connect({ keepalive: 0 });
    const got = collect(b);
    await b.subscribeAsync({ '+/+': { qos: 2 }, '#': { qos: 2 } });
    await b.publishAsync('$TopicA/B', '', { qos: 1 });
    await b.publishAsync('TopicA/B', 'plain', { qos: 1 });
    await sleep(200);
    expect(got.map((m) => m.topic)).toEqual(['TopicA/B']);
  });

  it('unsubscribe: messages stop on the unsubscribed filter only', async () => {
    const h = await ctx.start(DEFAULTS);
    const b = await h.connect();
    const got = collect(b);
    for (const t of ['TopicA', 'TopicA/B', 'Topic/C']) await b.subscribeAsync(t, { qos: 2 });
    await b.unsubscribeAsync('TopicA');
    const a = await h.connect();
    for (const t of ['TopicA', 'TopicA/B', 'Topic/C']) await a.publishAsync(t, '', { qos: 1 });
    await sleep(200);
    expect(got.map((m) => m.topic).sort()).toEqual(['Topic/C', 'TopicA/B']);
  });
});

describe('granted QoS (MQTT-3.8.4-6)', () => {
  it('delivers a QoS 2 publish at QoS 1 to a QoS 1 wildcard subscription, live and from the offline queue', async () => {
    const h = await ctx.start(DEFAULTS);
    const sub = await h.connect({ clientId: 'q1-sub', clean: false });
    const live = packets(sub);
    await sub.subscribeAsync('sensors/#', { qos: 1 });
    const pub = await h.connect();
    await pub.publishAsync('sensors/a', 'live', { qos: 2 });
    await sleep(200);
    expect(live.map((p) => [p.payload.toString(), p.qos])).toEqual([['live', 1]]);
    await sub.endAsync();
    await pub.publishAsync('sensors/b', 'queued', { qos: 2 });
    const back = mqtt.connect(`mqtt://127.0.0.1:${h.port}`, { clientId: 'q1-sub', clean: false, reconnectPeriod: 0 });
    const queued = packets(back);
    await new Promise((resolve) => back.once('connect', resolve));
    await sleep(300);
    expect(queued.map((p) => [p.payload.toString(), p.qos])).toEqual([['queued', 1]]);
    await back.endAsync();
  });

  it('delivers at QoS 0 to a QoS 0 subscription, and a retained QoS 2 message at the granted QoS', async () => {
    const h = await ctx.start(DEFAULTS);
    const pub = await h.connect();
    await pub.publishAsync('meters/kitchen', 'retained', { qos: 2, retain: true });
    const sub = await h.connect();
    const got = packets(sub);
    await sub.subscribeAsync('meters/+', { qos: 1 });
    await sub.subscribeAsync('other/#', { qos: 0 });
    await pub.publishAsync('other/x', 'zero', { qos: 2 });
    await sleep(200);
    expect(got.map((p) => [p.payload.toString(), p.qos]).sort()).toEqual([['retained', 1], ['zero', 0]]);
  });
});

describe('deny rules', () => {
  it('never delivers a denied topic to an allowed wildcard subscription: live, retained, or queued while offline', async () => {
    const h = await ctx.start(DENY_NOSUBSCRIBE);
    const pub = await h.connect();
    await pub.publishAsync('test/nosubscribe', 'retained secret', { qos: 1, retain: true });
    const sub = await h.connect({ clientId: 'all-1', clean: false });
    const got = collect(sub);
    expect(await subackCodes(sub, { '#': { qos: 1 }, 'test/+': { qos: 1 } })).toEqual([1, 1]); // overlapping: granted
    await pub.publishAsync('test/nosubscribe', 'live secret', { qos: 1 });
    await pub.publishAsync('test/fine', 'live', { qos: 1 });
    await sleep(200);
    await sub.endAsync();
    await pub.publishAsync('test/nosubscribe', 'queued secret', { qos: 1 });
    await pub.publishAsync('test/fine', 'queued', { qos: 1 });
    const back = mqtt.connect(`mqtt://127.0.0.1:${h.port}`, { clientId: 'all-1', clean: false, reconnectPeriod: 0 });
    const later = collect(back);
    await new Promise((resolve) => back.once('connect', resolve));
    await sleep(300);
    await back.endAsync();
    // (aedes queues one copy per matching persistent subscription: MQTT-3.3.5-1 allows the extra copy)
    const payloads = [...got, ...later].map((m) => m.payload);
    expect(new Set(payloads)).toEqual(new Set(['live', 'queued']));
    expect(h.broker.errorCounts().acl_delivery_withheld).toBeGreaterThanOrEqual(3);
  });

  it('checks deny before allow over every rule, with placeholders, for publish and subscribe', async () => {
    const h = await ctx.start({
      auth: {
        acl: [
          { anonymous: true, publish: ['#'], subscribe: ['#'] },
          { anonymous: true, deny: { publish: ['locks/#'], subscribe: ['private/%c/#'] } },
        ],
      },
    });
    const watcher = await h.connect({ clientId: 'watcher' });
    const got = collect(watcher);
    await watcher.subscribeAsync('#', { qos: 1 });
    const c = await h.connect({ clientId: 'cam-1' });
    expect(await subackCodes(c, { 'private/cam-1/#': { qos: 0 }, 'private/cam-1/x': { qos: 0 }, 'private/cam-2/x': { qos: 0 } })).toEqual([128, 128, 0]);
    await c.publishAsync('locks/front', 'UNLOCK', { qos: 1 }); // acknowledged, dropped
    await c.publishAsync('private/watcher/x', 'hidden from watcher', { qos: 1 });
    await c.publishAsync('lights/hall', 'on', { qos: 1 });
    await sleep(200);
    expect(got.map((m) => m.topic)).toEqual(['lights/hall']);
    expect(h.broker.errorCounts().acl_publish_denied).toBe(1);
  });
});

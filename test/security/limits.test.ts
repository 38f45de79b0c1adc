/**
 * Limits that keep a misbehaving client from exhausting memory (docs/security.md §Limits): payload and packet size,
 * in-flight QoS 1, connections at once and connection rate per source address. Real broker, real sockets.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionGate, type AdmitResult } from '../../src/broker/limits.js';
import { PacketScanner } from '../../src/broker/packet-scan.js';
import { collect, sleep, startSecureHarness, type SecureHarness } from './harness.js';

let h: SecureHarness | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await h?.close();
  h = undefined;
});

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', () => undefined);
    s.resume(); // read (and discard) CONNACKs, so 'close' can follow the server's end
    s.once('error', reject);
    sockets.push(s);
  });
}

function closedWithin(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => (clearTimeout(t), resolve(true)));
  });
}

/** A minimal MQTT 3.1.1 CONNECT for `clientId` (§3.1). */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, id.length]), id]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

describe('packet and payload size', () => {
  it('drops a PUBLISH whose payload is over the limit (acknowledged, not delivered, not stored) and keeps the client', async () => {
    h = await startSecureHarness({ broker: { limits: { maxPayloadBytes: 1024 } } });
    const watcher = await h.connect();
    const seen = collect(watcher);
    await watcher.subscribeAsync('devices/#', { qos: 1 });
    const device = await h.connect();
    const big = JSON.stringify({ blob: 'x'.repeat(2000) });
    await device.publishAsync('devices/big/state', big, { qos: 1 });
    await device.publishAsync('devices/small/state', JSON.stringify({ on: true }), { qos: 1 });
    await sleep(100);
    expect(device.connected).toBe(true);
    expect(seen.map((m) => m.topic)).toEqual(['devices/small/state']);
    expect(await h.storedState('big')).toBeUndefined();
    expect(await h.storedState('small')).toEqual({ on: true });
    expect(h.broker.errorCounts().payload_too_large).toBe(1);
  });

  it('closes a connection whose packet declares more than the packet limit, before buffering it', async () => {
    h = await startSecureHarness({ broker: { limits: { maxPayloadBytes: 1024, maxPacketBytes: 4096 } } });
    const s = await rawSocket(h.port);
    s.write(connectPacket('huge-1'));
    await sleep(50);
    // PUBLISH declaring 200 MB (remaining length 0xE0 0x8A 0xB0 0x5F ≈ 200,000,000), then only a few bytes.
    s.write(Buffer.from([0x30, 0x80, 0xc2, 0xae, 0x5f, 0x00, 0x01, 0x61]));
    expect(await closedWithin(s, 2000)).toBe(true);
    expect(h.broker.errorCounts().packet_too_large).toBe(1);
    const ok = await h.connect();
    expect(ok.connected).toBe(true);
  });

  it('scans remaining lengths across chunk boundaries', () => {
    const scanner = new PacketScanner(100);
    const pub = Buffer.from([0x30, 0x05, 0, 1, 0x61, 0x62, 0x63]); // 7-byte PUBLISH
    const stream = Buffer.concat([pub, pub, Buffer.from([0x30, 0xc8, 0x01])]); // then one declaring 200 bytes
    for (let i = 0; i < stream.length - 3; i += 1) expect(scanner.feed(stream.subarray(i, i + 1))).toBeUndefined();
    expect(scanner.feed(stream.subarray(stream.length - 3, stream.length - 1))).toBeUndefined();
    expect(scanner.feed(stream.subarray(stream.length - 1))).toEqual({ kind: 'too_large', declared: 200 });
    expect(new PacketScanner(100).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({ kind: 'malformed' });
  });
});

describe('in-flight', () => {
  it('closes a client that pipelines more unacknowledged QoS 1 messages than allowed', async () => {
    h = await startSecureHarness({ broker: { limits: { maxInflightPerClient: 5 } } });
    // One socket read is handled concurrently and each QoS 1 message waits for its group commit: all 50 are in flight.
    const s = await rawSocket(h.port);
    s.write(connectPacket('flood-1'));
    await sleep(50);
    const publishes: Buffer[] = [];
    for (let id = 1; id <= 50; id += 1) {
      const topic = Buffer.from('devices/flood/state');
      const payload = Buffer.from(`{"n":${id}}`);
      const body = Buffer.concat([Buffer.from([0, topic.length]), topic, Buffer.from([id >> 8, id & 0xff]), payload]);
      publishes.push(Buffer.concat([Buffer.from([0x32, body.length]), body]));
    }
    s.write(Buffer.concat(publishes));
    expect(await closedWithin(s, 3000)).toBe(true);
    expect(h.broker.errorCounts().inflight_limit).toBeGreaterThanOrEqual(1);
    // A well-behaved client (one message at a time) is unaffected.
    const c = await h.connect();
    for (let i = 0; i < 10; i += 1) await c.publishAsync('devices/calm/state', JSON.stringify({ n: i }), { qos: 1 });
    expect(await h.storedState('calm')).toEqual({ n: 9 });
  });
});

describe('connections', () => {
  it('refuses connections from one address beyond the burst, and admits again as the rate refills', async () => {
    h = await startSecureHarness({ broker: { limits: { connectionBurst: 3, connectionsPerMinute: 600, rateLimitLoopback: true } } });
    const url = `mqtt://127.0.0.1:${h.port}`;
    for (let i = 0; i < 3; i += 1) {
      const c = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
      await c.endAsync();
    }
    const s = await rawSocket(h.port);
    expect(await closedWithin(s, 1000)).toBe(true);
    expect(h.broker.errorCounts().connection_rate_limited).toBe(1);
    await sleep(150); // 600/min = one token every 100 ms
    const again = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
    expect(again.connected).toBe(true);
    await again.endAsync();
  });

  it('exempts loopback from the rate by default but not from maxConnections', async () => {
    h = await startSecureHarness({ broker: { limits: { connectionBurst: 1, maxConnections: 3 } } });
    const open: Socket[] = [];
    for (let i = 0; i < 3; i += 1) {
      const s = await rawSocket(h.port);
      s.write(connectPacket(`held-${i}`));
      open.push(s);
    }
    await sleep(100);
    for (const s of open) expect(s.destroyed).toBe(false);
    const fourth = await rawSocket(h.port);
    expect(await closedWithin(fourth, 1000)).toBe(true);
    expect(h.broker.errorCounts().too_many_connections).toBe(1);
    open[0]?.destroy();
    await sleep(50);
    const fifth = await rawSocket(h.port);
    expect(await closedWithin(fifth, 200)).toBe(false);
  });

  it('lets a new socket take the place of the oldest one that never sent CONNECT when a cap is reached', async () => {
    h = await startSecureHarness({ broker: { limits: { maxConnections: 1000, maxConnectionsPerAddress: 3 } } });
    const silent: Socket[] = [];
    for (let i = 0; i < 3; i += 1) silent.push(await rawSocket(h.port));
    await sleep(50);
    // A real client still gets in: its socket displaces the oldest silent one (mutation: refuse at the cap → fails).
    const c = await h.connect({ clientId: 'real-one' });
    expect(c.connected).toBe(true);
    expect(await closedWithin(silent[0] as Socket, 1000)).toBe(true);
    expect(silent[1]?.destroyed).toBe(false);
    expect(h.broker.errorCounts().silent_socket_displaced).toBe(1);
  });

  it('token bucket: burst, refill at the configured rate, bounded memory per address', () => {
    let now = 0;
    const gate = new ConnectionGate({ maxConnections: 100_000, connectionBurst: 2, connectionsPerMinute: 60, now: () => now });
    const refusal = (r: AdmitResult) => (r.ok ? undefined : r.refusal);
    const first = gate.admit('10.0.0.1');
    expect(refusal(first)).toBeUndefined();
    expect(refusal(gate.admit('10.0.0.1'))).toBeUndefined();
    expect(refusal(gate.admit('10.0.0.1'))).toBe('connection_rate_limited');
    expect(refusal(gate.admit('10.0.0.2'))).toBeUndefined(); // other addresses have their own bucket
    now += 1000;
    expect(refusal(gate.admit('10.0.0.1'))).toBeUndefined();
    expect(refusal(gate.admit('10.0.0.1'))).toBe('connection_rate_limited');
    expect(gate.open).toBe(4);
    if (first.ok) first.ticket.release();
    if (first.ok) first.ticket.release(); // idempotent
    expect(gate.open).toBe(3);
    for (let i = 0; i < 20_000; i += 1) gate.admit(`10.1.${i >> 8}.${i & 255}`);
    expect(() => new ConnectionGate({ maxConnections: 0, connectionBurst: 1, connectionsPerMinute: 1 })).toThrow(/maxConnections must be a number >= 1, given 0/);
  });
});

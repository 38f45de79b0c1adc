import { connect as tcpConnect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyBrokerError, createBroker, type Broker } from '../../src/broker/index.js';
import { GatewayError } from '../../src/errors.js';
import { RateLimitedLog } from '../../src/util/rate-limited-log.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { ConfigError } from '../../src/errors.js';

let broker: Broker | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await broker?.stop();
  broker = undefined;
});

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', () => undefined);
    s.once('error', reject);
    sockets.push(s);
  });
}

function closed(s: Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), timeoutMs);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function pingPong(port: number): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  try {
    await client.subscribeAsync('check/+', { qos: 1 });
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await client.publishAsync('check/1', 'hello', { qos: 1 });
    expect(await got).toBe('hello');
  } finally {
    await client.endAsync();
  }
}

describe('embedded broker', () => {
  it('starts on port 0, serves clients, counts them and stops cleanly', async () => {
    broker = createBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const { port } = await broker.start();
    expect(port).toBeGreaterThan(0);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    expect(broker.clientCount()).toBe(1);
    await pingPong(port);
    await broker.stop();
    broker = undefined;
    await new Promise<void>((resolve) => (client.connected ? client.once('close', () => resolve()) : resolve()));
    expect(client.connected).toBe(false);
    await client.endAsync(true);
  });

  it('rejects invalid options with what was expected', () => {
    expect(() => createBroker({ host: '127.0.0.1', port: 70000, logger: silentLogger() })).toThrow(ConfigError);
    expect(() =>
      createBroker({ host: '127.0.0.1', port: 0, logger: silentLogger(), limits: { connectTimeoutMs: -1 } }),
    ).toThrow(/limits.connectTimeoutMs/);
  });

  it('survives random bytes, half packets and silent sockets, and keeps serving a normal client', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
    broker = createBroker({
      host: '127.0.0.1',
      port: 0,
      logger: createLogger({ level: 'warn', destination: sink }),
      limits: { connectTimeoutMs: 300, errorLogIntervalMs: 60_000 },
    });
    const { port } = await broker.start();

    const garbage: Socket[] = [];
    for (let i = 0; i < 5; i += 1) {
      const s = await rawSocket(port);
      s.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00])); // CONNECT with an impossible length
      garbage.push(s);
    }
    const random = await rawSocket(port);
    random.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const half = await rawSocket(port);
    half.write(Buffer.from([0x10, 0x1a, 0x00, 0x04, 0x4d, 0x51])); // the first bytes of a CONNECT, then silence
    const silent = await rawSocket(port);
    // seeded random junk, including bytes that start valid-looking packets of every type
    let seed = 42;
    const next = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed);
    const junk: Socket[] = [];
    for (let i = 0; i < 30; i += 1) {
      const bytes = Buffer.from(Array.from({ length: 1 + (next() % 300) }, () => next() % 256));
      bytes[0] = (i % 16) << 4;
      const s = await rawSocket(port);
      s.write(bytes);
      junk.push(s);
    }

    await pingPong(port); // served while the junk is still open
    for (const s of [...garbage, random]) expect(await closed(s, 2000)).toBe(true);
    expect(await closed(half, 2000)).toBe(true); // connect timeout
    expect(await closed(silent, 2000)).toBe(true);
    for (const s of junk) expect(await closed(s, 2000)).toBe(true);
    await pingPong(port);

    const counts = broker.errorCounts();
    expect(counts.malformed_packet).toBeGreaterThanOrEqual(6);
    expect(counts.connect_timeout).toBeGreaterThanOrEqual(2);
    // rate-limited: one line per reason within the interval, however many events
    const malformedLines = lines.filter((l) => l.includes('"reason":"malformed_packet"'));
    expect(malformedLines).toHaveLength(1);
  });

  it('refuses PUBLISH to $SYS topics', async () => {
    broker = createBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const { port } = await broker.start();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    const closedP = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('$SYS/forged', 'x', { qos: 1 });
    await closedP;
    await client.endAsync(true);
    await pingPong(port);
  });

  it('runs publish interceptors in order and lets one refuse', async () => {
    broker = createBroker({ host: '127.0.0.1', port: 0, logger: silentLogger() });
    const order: string[] = [];
    broker.addPublishInterceptor((_c, p, done) => (order.push(`a:${p.topic}`), done(null)));
    const remove = broker.addPublishInterceptor((_c, p, done) => (order.push(`b:${p.topic}`), done(null)));
    const { port } = await broker.start();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    await client.publishAsync('t/1', 'x', { qos: 1 });
    remove();
    await client.publishAsync('t/2', 'x', { qos: 1 });
    await client.endAsync();
    expect(order).toEqual(['a:t/1', 'b:t/1', 'a:t/2']);
  });
});

describe('classifyBrokerError', () => {
  it('maps known errors to stable reasons', () => {
    expect(classifyBrokerError(new Error('connect did not arrive in time'))).toBe('connect_timeout');
    expect(classifyBrokerError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe('connection_reset');
    expect(classifyBrokerError(new Error('Invalid header flag bits, must be 0x0 for connect packet'))).toBe('malformed_packet');
    // an interceptor's refusal crosses by code (NOT_ACKNOWLEDGED), not by message text
    expect(classifyBrokerError(new GatewayError('NOT_ACKNOWLEDGED', 'not acknowledged: disk full'))).toBe('ingest_rejected');
    expect(classifyBrokerError(new Error('something else'))).toBe('other');
  });
});

describe('RateLimitedLog', () => {
  it('logs one line per reason per interval, carrying the count since the previous line', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write: (chunk: Buffer, _e, cb) => {
        const parsed: unknown = JSON.parse(chunk.toString());
        if (typeof parsed === 'object' && parsed !== null) lines.push({ ...parsed });
        cb();
      },
    });
    let t = 0;
    const log = new RateLimitedLog({ logger: createLogger({ level: 'info', destination: sink }), intervalMs: 10_000, now: () => t });
    for (let i = 0; i < 5; i += 1) log.record('a', 'bad a');
    log.record('b', 'bad b');
    t = 9_999;
    log.record('a', 'bad a');
    t = 10_000;
    log.record('a', 'bad a');
    expect(lines.map((l) => [l.reason, l.count, l.total])).toEqual([
      ['a', 1, 1],
      ['b', 1, 1],
      ['a', 6, 7],
    ]);
    expect(log.counts()).toEqual({ a: 7, b: 1 });
    log.record('b', 'bad b');
    log.flush();
    expect(lines.at(-1)).toMatchObject({ reason: 'b', count: 1, total: 2 });
  });
});

/**
 * Memory before authentication (docs/protocol.md §Limits): the auth endpoints take small uncompressed bodies; nothing
 * is read before the request is admitted, nothing inflated or parsed before the signature is checked; inflated size,
 * nesting depth and value count are bounded per endpoint; bodies in memory and decodes at once are bounded server-wide.
 */
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { newNonce, signRequest } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { send, TestClient } from './client.js';

const RELAXED = { rateLimit: { ratePerSecond: 10_000, burst: 10_000 } };
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function server(overrides: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const ts = await startTestServer({ ...RELAXED, ...overrides });
  cleanup.push(() => ts.close());
  return ts;
}

async function signedClient(ts: TestServer, home = 'home-L'): Promise<TestClient> {
  const creds = await ts.addClient(home);
  const c = new TestClient(ts.url, creds, { sign: creds });
  await c.login();
  return c;
}

/** `[{},{},…]` of about `bytes` bytes. */
const flood = (bytes: number): Buffer => Buffer.from(`[${'{},'.repeat(Math.floor(bytes / 3))}{}]`);

/** Sends raw request text on its own socket; resolves with the response head and how long it took. */
function rawRequest(port: number, head: string, body?: Buffer): Promise<{ text: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no response within 5 s: the server waited for the body'));
    }, 5_000);
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      if (body) socket.write(body);
    });
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\r\n\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ text, ms: Date.now() - started });
      }
    });
    socket.on('error', reject);
  });
}

describe('what each endpoint accepts as a body', () => {
  it('auth endpoints refuse compressed bodies (415) and bodies over 8 KiB (413)', async () => {
    const ts = await server();
    const bomb = gzipSync(flood(1024 * 1024));
    for (const path of ['/api/v1/auth/token', '/api/v1/auth/refresh']) {
      const res = await send(ts.url, path, undefined, { rawBody: bomb, headers: { 'content-encoding': 'gzip' } });
      expect(res.status).toBe(415);
      expect(res.json.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      const big = await send(ts.url, path, { client_id: 'x', client_secret: 'y'.repeat(9000) });
      expect(big.status).toBe(413);
    }
  });

  it('sync_request and sync_ack inflate at most 64 KiB; a push at most maxInflatedBytes', async () => {
    const ts = await server({ maxInflatedBytes: 1024 * 1024 });
    const c = await signedClient(ts);
    for (const path of ['/api/v1/sync/request', '/api/v1/sync/ack']) {
      const res = await c.post(path, undefined, { rawBody: gzipSync(Buffer.alloc(70 * 1024, 0x20)), headers: { 'content-encoding': 'gzip' } });
      expect(res.status).toBe(413);
      expect(res.json.code).toBe('PAYLOAD_TOO_LARGE');
    }
    const pad = (n: number): Buffer => Buffer.from(JSON.stringify({ type: 'sync_push', client_id: c.creds.client_id, changes: [], pad: 'x'.repeat(n) }));
    expect((await c.post('/api/v1/sync/push', undefined, { rawBody: gzipSync(pad(900 * 1024)), headers: { 'content-encoding': 'gzip' } })).status).toBe(200);
    const over = await c.post('/api/v1/sync/push', undefined, { rawBody: gzipSync(pad(1100 * 1024)), headers: { 'content-encoding': 'gzip' } });
    expect(over.status).toBe(413);
  });

  it('bounds the JSON before parsing it: too many values is 413, too deep is 400, invalid UTF-8 is 400', async () => {
    const ts = await server({ maxPushChanges: 10 }); // 10 × 256 + 64 values
    const c = await signedClient(ts);
    const manyValues = Buffer.from(`{"type":"sync_push","client_id":"${c.creds.client_id}","changes":[],"pad":${flood(3 * 6000).toString()}}`);
    const res = await c.post('/api/v1/sync/push', undefined, { rawBody: manyValues });
    expect(res.status).toBe(413);
    expect(res.json.message).toContain('values');
    const deep = Buffer.from(`{"type":"sync_request","client_id":"${c.creds.client_id}","x":${'['.repeat(65)}${']'.repeat(65)}}`);
    const deepRes = await c.post('/api/v1/sync/request', undefined, { rawBody: deep });
    expect(deepRes.status).toBe(400);
    expect(deepRes.json.message).toContain('deeper');
    const latin1 = Buffer.concat([Buffer.from(`{"type":"sync_request","client_id":"${c.creds.client_id}","x":"`), Buffer.from([0xe9]), Buffer.from('"}')]);
    const bad = await c.post('/api/v1/sync/request', undefined, { rawBody: latin1 });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain('UTF-8');
  });
});

describe('order: nothing costly before the request is known to be allowed', () => {
  it('checks the signature before inflating: a corrupt gzip body with a bad signature is 401, not 400', async () => {
    const ts = await server({ hmac: { required: true } });
    const c = await signedClient(ts);
    const corrupt = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0xff, 0xff, 0xff]);
    const headers = {
      ...signRequest({ secret: 'not-the-secret', method: 'POST', path: '/api/v1/sync/push', clientId: c.creds.client_id, body: corrupt, timestampSeconds: Math.floor(Date.now() / 1000), nonce: newNonce() }),
      'content-encoding': 'gzip',
    };
    const res = await send(ts.url, '/api/v1/sync/push', undefined, { rawBody: corrupt, token: c.token, headers });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('BAD_SIGNATURE');
    const signed = await c.post('/api/v1/sync/push', undefined, { rawBody: corrupt, headers: { 'content-encoding': 'gzip' } });
    expect(signed.status).toBe(400);
  });

  it('refuses an unsigned request before reading its body when signing is required', async () => {
    const ts = await server({ hmac: { required: true } });
    const c = await signedClient(ts);
    const { port } = new URL(ts.url);
    // 3 MiB announced, none sent: the answer comes without waiting for it
    const { text } = await rawRequest(
      Number(port),
      `POST /api/v1/sync/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${c.token}\r\nContent-Length: ${3 * 1024 * 1024}\r\n\r\n`,
    );
    expect(text).toMatch(/^HTTP\/1\.1 401/);
    expect(text).toContain('BAD_SIGNATURE');
    expect(text.toLowerCase()).toContain('connection: close');
  });
});

describe('reading bodies', () => {
  it('reads a body with a declared length and a chunked one alike', async () => {
    const ts = await server();
    const c = new TestClient(ts.url, await ts.addClient('home-chunked'));
    await c.login();
    const body = JSON.stringify({ type: 'sync_request', client_id: c.creds.client_id });
    expect((await c.post('/api/v1/sync/request', undefined, { rawBody: body })).status).toBe(200);
    // many socket reads into one buffer of the declared length
    const big = JSON.stringify({ type: 'sync_push', client_id: c.creds.client_id, changes: [], pad: 'p'.repeat(600 * 1024) });
    expect((await c.post('/api/v1/sync/push', undefined, { rawBody: big })).status).toBe(200);
    const parts = [body.slice(0, 10), body.slice(10, 30), body.slice(30)];
    const chunked = `${parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('')}0\r\n\r\n`;
    const { text } = await rawRequest(
      Number(new URL(ts.url).port),
      `POST /api/v1/sync/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${c.token}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      Buffer.from(chunked),
    );
    expect(text).toMatch(/^HTTP\/1\.1 200/);
  });
});

describe('server-wide bounds', () => {
  it('holds at most limits.bodyMemoryBytes of bodies at once: beyond, 503 SERVER_BUSY with Retry-After', async () => {
    const ts = await server({ limits: { bodyMemoryBytes: 1024 * 1024 } });
    const c = await signedClient(ts);
    const { port } = new URL(ts.url);
    // a slow upload holds 800 KiB of the budget (announced, half sent)
    const slow = connect(Number(port), '127.0.0.1');
    cleanup.push(async () => {
      slow.destroy();
    });
    await new Promise((r) => slow.once('connect', r));
    slow.write(`POST /api/v1/sync/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${c.token}\r\nContent-Length: ${800 * 1024}\r\n\r\n{"a":"`);
    await new Promise((r) => setTimeout(r, 100));
    const body = Buffer.from(JSON.stringify({ type: 'sync_push', client_id: c.creds.client_id, changes: [], pad: 'x'.repeat(300 * 1024) }));
    const res = await c.post('/api/v1/sync/push', undefined, { rawBody: body });
    expect(res.status).toBe(503);
    expect(res.json.code).toBe('SERVER_BUSY');
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    slow.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect((await c.post('/api/v1/sync/push', undefined, { rawBody: body })).status).toBe(200);
  });

  it('inflates at most limits.decodeConcurrency gzip bodies at once; beyond the queue, 503 SERVER_BUSY', async () => {
    const ts = await server({ limits: { decodeConcurrency: 1, decodeQueue: 1 }, maxInflatedBytes: 64 * 1024 * 1024 });
    const c = await signedClient(ts);
    // big enough to keep the one slot busy for a while: 48 MiB of spaces inflated asynchronously
    const heavy = gzipSync(Buffer.concat([Buffer.from(`{"type":"sync_push","client_id":"${c.creds.client_id}","changes":[]`), Buffer.alloc(48 * 1024 * 1024, 0x20), Buffer.from('}')]));
    const results = await Promise.all(Array.from({ length: 6 }, () => c.post('/api/v1/sync/push', undefined, { rawBody: heavy, headers: { 'content-encoding': 'gzip' } })));
    const statuses = results.map((r) => r.status);
    expect(statuses).toContain(503);
    expect(results.find((r) => r.status === 503)?.json.code).toBe('SERVER_BUSY');
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
    expect((await send(ts.url, '/api/v1/health', undefined, { method: 'GET' })).status).toBe(200);
  });
});

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { GatewayError, SyncHttpError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import {
  HEADER_CLIENT_ID,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  signResponse,
  verifyRequest,
} from '../../src/protocol/index.js';
import { parseRetryAfter, SyncTransport } from '../../src/sync/index.js';

const SECRET = 'test-secret-0123456789';
const EchoSchema = z.object({ ok: z.literal(true), size: z.number(), items: z.array(z.string()) });

interface Seen { encoding: string | undefined; signatureOk: boolean; acceptEncoding: string | undefined }
const seen: Seen[] = [];
let server: Server;
let url: string;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const check = verifyRequest({
    secret: SECRET, method: req.method ?? '', path: req.url ?? '', clientId: header(req, HEADER_CLIENT_ID) ?? '', body: raw,
    headers: { timestamp: header(req, HEADER_TIMESTAMP), nonce: header(req, HEADER_NONCE), signature: header(req, HEADER_SIGNATURE) },
    nowSeconds: Math.floor(Date.now() / 1000),
  });
  seen.push({ encoding: header(req, 'content-encoding'), signatureOk: check.ok, acceptEncoding: header(req, 'accept-encoding') });
  const nonce = header(req, HEADER_NONCE) ?? '';
  const send = (status: number, body: Buffer, extra: Record<string, string> = {}, sign: 'good' | 'bad' | 'none' = 'good'): void => {
    const sig = signResponse({ secret: SECRET, status, requestNonce: sign === 'bad' ? 'another-nonce-123456' : nonce, body, timestampSeconds: Math.floor(Date.now() / 1000) });
    res.writeHead(status, { 'content-type': 'application/json', ...(sign === 'none' ? {} : sig), ...extra });
    res.end(body);
  };
  const path = req.url ?? '';
  if (path === '/echo') {
    const text = header(req, 'content-encoding') === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
    const items = (JSON.parse(text) as { items: string[] }).items;
    send(200, gzipSync(JSON.stringify({ ok: true, size: raw.length, items })), { 'content-encoding': 'gzip' });
  } else if (path === '/unsigned') send(200, Buffer.from('{"ok":true,"size":0,"items":[]}'), {}, 'none');
  else if (path === '/wrong-nonce') send(200, Buffer.from('{"ok":true,"size":0,"items":[]}'), {}, 'bad');
  else if (path === '/tampered') {
    const body = Buffer.from('{"ok":true,"size":0,"items":[]}');
    const sig = signResponse({ secret: SECRET, status: 200, requestNonce: nonce, body, timestampSeconds: Math.floor(Date.now() / 1000) });
    res.writeHead(200, { 'content-type': 'application/json', ...sig });
    res.end('{"ok":true,"size":1,"items":[]}');
  } else if (path === '/limited') {
    send(429, Buffer.from('{"type":"error","code":"RATE_LIMITED","message":"slow down","retry_after":7}'), { 'retry-after': '7' });
  } else if (path === '/proxy-limited') {
    // A proxy in front of the server: plain text, unsigned, only the status and Retry-After say what happened.
    res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '3' });
    res.end('Too Many Requests');
  } else if (path === '/bad-shape') send(200, Buffer.from('{"ok":false}'));
  else if (path === '/expired') send(401, Buffer.from('{"type":"error","code":"AUTH_EXPIRED","message":"token expired"}'), {}, 'none');
  else if (path === '/slow') {
    setTimeout(() => send(200, Buffer.from('{"ok":true,"size":0,"items":[]}')), 2_000).unref();
  } else send(404, Buffer.from('{"type":"error","code":"NOT_FOUND","message":"no"}'));
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function transport(extra: Partial<ConstructorParameters<typeof SyncTransport>[0]> = {}): SyncTransport {
  return new SyncTransport({ serverUrl: url, clientId: 'gw-test', clientSecret: SECRET, logger: silentLogger(), ...extra });
}

describe('sync transport (against a node:http server)', () => {
  it('gzips bodies above 1 KB, signs every request, gunzips and verifies responses, counts bytes', async () => {
    const t = transport();
    const items = Array.from({ length: 200 }, (_, i) => `item-${i}-${'x'.repeat(20)}`);
    const big = await t.call({ method: 'POST', path: '/echo', body: { items }, schema: EchoSchema });
    expect(big.value.items).toEqual(items);
    const small = await t.call({ method: 'POST', path: '/echo', body: { items: ['a'] }, schema: EchoSchema });
    expect(small.value.items).toEqual(['a']);
    const [first, second] = seen.slice(-2);
    expect(first).toMatchObject({ encoding: 'gzip', signatureOk: true, acceptEncoding: 'gzip' });
    expect(second).toMatchObject({ encoding: undefined, signatureOk: true });
    expect(big.value.size).toBeLessThan(JSON.stringify({ items }).length / 3);
    expect(t.stats.requests).toBe(2);
    expect(t.stats.bytesSent).toBeGreaterThan(big.value.size + small.value.size);
    expect(t.stats.bytesReceived).toBeGreaterThan(100);
    await t.close();
  });

  it('refuses a response with a missing, mismatched or tampered signature (BAD_SIGNATURE)', async () => {
    const t = transport();
    for (const path of ['/unsigned', '/wrong-nonce', '/tampered']) {
      const err = await t.call({ method: 'GET', path, schema: EchoSchema }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe('BAD_SIGNATURE');
    }
    // with HMAC off, the unsigned response is fine
    const plain = transport({ hmac: false });
    await expect(plain.call({ method: 'GET', path: '/unsigned', schema: EchoSchema })).resolves.toMatchObject({ status: 200 });
    await Promise.all([t.close(), plain.close()]);
  });

  it('parses error bodies with Retry-After, validates response shapes', async () => {
    const t = transport();
    const limited = await t.call({ method: 'GET', path: '/limited', schema: EchoSchema }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(SyncHttpError);
    expect(limited).toMatchObject({ code: 'RATE_LIMITED', status: 429, retryAfterSeconds: 7 });
    const proxied = await t.call({ method: 'GET', path: '/proxy-limited', schema: EchoSchema }).catch((e: unknown) => e);
    expect(proxied).toMatchObject({ code: 'RATE_LIMITED', status: 429, retryAfterSeconds: 3 });
    const expired = await t.call({ method: 'GET', path: '/expired', schema: EchoSchema }).catch((e: unknown) => e);
    expect(expired).toMatchObject({ code: 'AUTH_EXPIRED', status: 401 });
    const bad = await t.call({ method: 'GET', path: '/bad-shape', schema: EchoSchema }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'BAD_RESPONSE' });
    expect((bad as Error).message).toMatch(/ok/);
    expect(parseRetryAfter('12')).toBe(12);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30);
    expect(parseRetryAfter('soon')).toBeUndefined();
    await t.close();
  });

  it('times out (TIMEOUT) and reports a refused connection (TRANSPORT)', async () => {
    const t = transport({ headersTimeoutMs: 200 });
    const started = Date.now();
    const slow = await t.call({ method: 'GET', path: '/slow', schema: EchoSchema }).catch((e: unknown) => e);
    expect(slow).toMatchObject({ code: 'TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1_500);
    await t.destroy();
    const dead = new SyncTransport({ serverUrl: 'http://127.0.0.1:1', clientId: 'gw', clientSecret: SECRET, logger: silentLogger() });
    await expect(dead.call({ method: 'GET', path: '/x', schema: EchoSchema })).rejects.toMatchObject({ code: 'TRANSPORT' });
    await dead.destroy();
  });

  it('validates its options, listing expected vs given', () => {
    expect(() => transport({ serverUrl: 'ftp://x', connectTimeoutMs: 0 })).toThrow(/serverUrl[\s\S]*connectTimeoutMs/);
  });
});

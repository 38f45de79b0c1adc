import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt, send } from './client.js';

describe('HTTP surface', () => {
  let ts: TestServer;
  let c: TestClient;
  beforeAll(async () => {
    ts = await startTestServer({ maxBodyBytes: 64 * 1024, maxInflatedBytes: 256 * 1024 });
    c = new TestClient(ts.url, await ts.addClient('home-http'));
    await c.login();
  });
  afterAll(async () => {
    await ts.close();
  });

  it('answers an unknown path with 404 NOT_FOUND and a wrong method with 405', async () => {
    const nf = await send(ts.url, '/api/v1/nope', {});
    expect(nf.status).toBe(404);
    expect(nf.json).toEqual({ type: 'error', code: 'NOT_FOUND', message: expect.any(String) });
    const get = await send(ts.url, '/api/v1/sync/request', undefined, { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.json.code).toBe('METHOD_NOT_ALLOWED');
    expect(get.headers.allow).toBe('POST');
  });

  it('refuses a non-JSON content type with 415', async () => {
    const res = await c.post('/api/v1/sync/request', undefined, {
      rawBody: 'type=sync_request',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(415);
    expect(res.json.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers malformed JSON with 400 BAD_REQUEST, never 500', async () => {
    for (const body of ['{"type":', 'null', '[]', '"x"', '{}', '\u0000']) {
      const res = await c.post('/api/v1/sync/push', undefined, { rawBody: body });
      expect(res.status, body).toBe(400);
      expect(res.json.code).toBe('BAD_REQUEST');
    }
  });

  it('lists the schema issues in the 400 message', async () => {
    const res = await c.post('/api/v1/sync/request', { type: 'sync_request', client_id: c.creds.client_id, last_sync: 'yesterday', limit: -1 });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain('last_sync');
    expect(res.json.message).toContain('limit');
  });

  it('ignores unknown fields in requests and in pushed changes', async () => {
    const req = await c.syncRequest({ last_sync: null, shiny_new_field: { nested: true } });
    expect(req.status).toBe(200);
    const change = { ...deviceChange('dev-unknown-fields', 'Lamp', isoAt(Date.now())), extra_envelope: 1 };
    const push = await c.push([change], {});
    expect(push.status).toBe(200);
    expect(push.json.applied[0].status).toBe('applied');
  });

  it('ignores an entity type it does not store in sync_request.entity_types and says so; a malformed one is 400', async () => {
    const res = await c.syncRequest({ entity_types: ['devices', 'toasters'] });
    expect(res.status).toBe(200);
    expect(res.json.ignored_entity_types).toEqual(['toasters']);
    const bad = await c.syncRequest({ entity_types: ['devices', 'x'.repeat(65)] });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain('entity_types');
  });

  it('refuses an oversized body with 413 and keeps serving', async () => {
    const big = Buffer.alloc(200 * 1024, 0x20);
    const res = await c.post('/api/v1/sync/push', undefined, { rawBody: big });
    expect(res.status).toBe(413);
    expect(res.json.code).toBe('PAYLOAD_TOO_LARGE');
    const after = await c.syncRequest();
    expect(after.status).toBe(200);
  });

  it('refuses an oversized chunked body (no content-length) with 413', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(16 * 1024, 0x20);
    }
    const { request } = await import('undici');
    const res = await request(`${ts.url}/api/v1/sync/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}` },
      body: Readable.from(chunks()),
    });
    if (res instanceof Error) throw res;
    expect(res.statusCode).toBe(413);
    await res.body.dump();
    expect((await c.syncRequest()).status).toBe(200);
  });

  it('inflates a gzip request and gzips a large response when accepted', async () => {
    const changes = Array.from({ length: 30 }, (_, i) => deviceChange(`dev-gz-${i}`, `Device number ${i}`, isoAt(Date.now())));
    const push = await c.push(changes, { gzip: true, acceptGzip: true });
    expect(push.status).toBe(200);
    expect(push.headers['content-encoding']).toBe('gzip');
    expect(push.json.applied).toHaveLength(30);
    const plain = await c.push(changes.slice(0, 1));
    expect(plain.headers['content-encoding']).toBeUndefined();
  });

  it('does not gzip a small response even when accepted', async () => {
    const res = await send(ts.url, '/api/v1/health', undefined, { method: 'GET', acceptGzip: true });
    expect(res.headers['content-encoding']).toBeUndefined();
  });

  it('answers a gzip bomb with 413 and the next request still works', async () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const res = await c.post('/api/v1/sync/push', undefined, {
      rawBody: bomb,
      headers: { 'content-encoding': 'gzip' },
    });
    expect(res.status).toBe(413);
    expect(res.json.code).toBe('PAYLOAD_TOO_LARGE');
    expect((await c.syncRequest()).status).toBe(200);
  });

  it('answers a corrupt gzip body with 400 and an unknown content-encoding with 415', async () => {
    const bad = await c.post('/api/v1/sync/push', undefined, { rawBody: 'not gzip', headers: { 'content-encoding': 'gzip' } });
    expect(bad.status).toBe(400);
    const br = await c.post('/api/v1/sync/push', undefined, { rawBody: '{}', headers: { 'content-encoding': 'br' } });
    expect(br.status).toBe(415);
  });
});

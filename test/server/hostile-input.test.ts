/**
 * Input the independent client and the reviewer sent (docs/protocol.md §Validation, §HMAC, §Compression): unpaired
 * surrogates in ids, data strings and keys (rejected per change, nothing stored, the database stays readable by
 * Python's sqlite3), lengths in code points, a zero-padded signature timestamp, a refresh signed by another client, a
 * truncated gzip body, and Accept-Encoding with q=0.
 */
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptsGzip, canonicalRequest, jsonTextProblem, MAX_DATA_DEPTH, newNonce, sha256Hex } from '../../src/protocol/index.js';
import { SERVER_DB_FILE } from '../../src/server/db.js';
import { startTestServer, type TestServer, sqliteStoreOf } from '../helpers/server.js';
import { deviceChange, isoAt, send, TestClient } from './client.js';

const LONE = '\ud800';

describe('unpaired surrogates and lengths', () => {
  let ts: TestServer;
  let c: TestClient;
  beforeAll(async () => {
    ts = await startTestServer({ rateLimit: { ratePerSecond: 10_000, burst: 10_000 } });
    c = new TestClient(ts.url, await ts.addClient('home-u'));
    await c.login();
  });
  afterAll(async () => {
    await ts.close();
  });

  it('rejects per change, with INVALID_ENTITY, a malformed id, sync_id, client_sync_id, data string or data key; the rest applies', async () => {
    const at = isoAt(Date.now());
    const bad = [
      deviceChange(`dev-${LONE}`, 'Lone id', at),
      { ...deviceChange('dev-sync', 'Lone sync id', at), sync_id: `s-${LONE}` },
      { ...deviceChange('dev-csid', 'Lone client sync id', at), client_sync_id: `c-${LONE}` },
      deviceChange('dev-str', `name ${LONE}`, at),
      { ...deviceChange('dev-key', 'Lone key', at), data: { name: 'Lone key', [`k${LONE}`]: 1 } },
      { ...deviceChange('dev-deep', 'Deep string', at), data: { name: 'x', extra: { list: [{ s: `x${LONE}` }] } } },
    ];
    const good = deviceChange('dev-good', 'Fine', at);
    const res = await c.pushOk([...bad, good]);
    expect(res.applied.map((a) => a.status)).toEqual([...bad.map(() => 'rejected'), 'applied']);
    expect(res.applied.slice(0, bad.length).map((a) => a.error?.code)).toEqual(bad.map(() => 'INVALID_ENTITY'));
    expect(res.applied[0]?.entity_id).toBe(`dev-${LONE}`); // echoed as sent (JSON-escaped on the wire)
    expect((await ts.server.entities('home-u')).map((e) => e.entity_id)).toEqual(['dev-good']);
    const stored = sqliteStoreOf(ts.server).db.prepare('SELECT client_sync_id FROM push_results').pluck().all() as string[];
    expect(stored.every((id) => id.isWellFormed())).toBe(true);
    // Python's sqlite3 decodes every text column of every table (it raised on the invalid UTF-8 stored before)
    const script = [
      'import sqlite3, sys',
      'db = sqlite3.connect(sys.argv[1])',
      "tables = [r[0] for r in db.execute(\"SELECT name FROM sqlite_master WHERE type = 'table'\")]",
      'n = sum(len(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)',
      'print(n)',
    ].join('\n');
    const rows = execFileSync('python3', ['-c', script, join(ts.dataDir, SERVER_DB_FILE)], { encoding: 'utf8' });
    expect(Number(rows)).toBeGreaterThan(0);
  });

  it('names the first malformed string or key of data by its path, and depth beyond the limit', () => {
    expect(jsonTextProblem({ a: { b: [1, `x${LONE}`] } }, MAX_DATA_DEPTH, 'data')).toBe('data.a.b.1: string is not well-formed Unicode (unpaired surrogate)');
    expect(jsonTextProblem({ a: { [`k${LONE}`]: 1 } }, MAX_DATA_DEPTH, 'data')).toBe('data.a: a key is not well-formed Unicode (unpaired surrogate)');
    expect(jsonTextProblem({ a: { b: { c: 1 } } }, 3, 'data')).toBeUndefined();
    expect(jsonTextProblem({ a: { b: { c: {} } } }, 3, 'data')).toBe('data.a.b.c: nested deeper than 3 levels');
    expect(jsonTextProblem({ ok: ['😀', 'fine'] }, MAX_DATA_DEPTH, 'data')).toBeUndefined();
  });

  it('refuses a malformed client_id or refresh token in a request with 400', async () => {
    expect((await c.syncRequest({ client_id: `x${LONE}` })).status).toBe(400);
    expect((await send(ts.url, '/api/v1/auth/refresh', { refresh_token: `r${LONE}` })).status).toBe(400);
    expect((await send(ts.url, '/api/v1/auth/token', { client_id: `gw${LONE}`, client_secret: 's' })).status).toBe(400);
  });

  it('counts id lengths in code points: 256 emoji are one valid id, 257 are not', async () => {
    const at = isoAt(Date.now());
    const ok = await c.pushOk([deviceChange('😀'.repeat(256), 'Emoji', at)]);
    expect(ok.applied[0]?.status).toBe('applied');
    expect((await c.push([deviceChange('😀'.repeat(257), 'Emoji', at)])).status).toBe(400);
  });
});

describe('what the independent client found', () => {
  let ts: TestServer;
  let a: TestClient;
  let b: TestClient;
  beforeAll(async () => {
    ts = await startTestServer({ hmac: { required: true }, rateLimit: { ratePerSecond: 10_000, burst: 10_000 } });
    const ca = await ts.addClient('home-c');
    const cb = await ts.addClient('home-c');
    a = new TestClient(ts.url, ca, { sign: ca });
    b = new TestClient(ts.url, cb, { sign: cb });
    await a.login();
    await b.login();
  });
  afterAll(async () => {
    await ts.close();
  });

  it('signs the timestamp as the header text: a zero-padded header verifies', async () => {
    const path = '/api/v1/sync/request';
    const body = Buffer.from(JSON.stringify({ type: 'sync_request', client_id: a.creds.client_id }));
    const padded = `00${Math.floor(Date.now() / 1000)}`; // 12 digits, the most the header may have
    const nonce = newNonce();
    const canonical = canonicalRequest({ method: 'POST', path, clientId: a.creds.client_id, body, timestampSeconds: Number(padded), nonce }, padded);
    expect(canonical.split('\n')[3]).toBe(padded);
    expect(canonical.split('\n')[6]).toBe(sha256Hex(body));
    const signature = `v1=${createHmac('sha256', a.creds.client_secret).update(canonical).digest('hex')}`;
    const headers = { 'x-inbetweenies-timestamp': padded, 'x-inbetweenies-nonce': nonce, 'x-inbetweenies-signature': signature };
    const res = await send(ts.url, path, undefined, { rawBody: body, token: a.token, headers });
    expect(res.status).toBe(200);
  });

  it('answers a refresh signed under another client id with 401 BAD_SIGNATURE, as the error table says', async () => {
    const res = await send(ts.url, '/api/v1/auth/refresh', { refresh_token: a.refreshToken }, { sign: b.creds });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('BAD_SIGNATURE');
  });

  it('refuses a gzip body whose 8-byte trailer was cut off with 400 BAD_REQUEST', async () => {
    const whole = gzipSync(Buffer.from(JSON.stringify({ type: 'sync_request', client_id: a.creds.client_id })));
    const res = await a.post('/api/v1/sync/request', undefined, { rawBody: whole.subarray(0, whole.length - 8), headers: { 'content-encoding': 'gzip' } });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('BAD_REQUEST');
    expect((await a.post('/api/v1/sync/request', undefined, { rawBody: whole, headers: { 'content-encoding': 'gzip' } })).status).toBe(200);
  });

  it('honours q=0 in Accept-Encoding, for gzip and for *', async () => {
    const at = isoAt(Date.now());
    await a.pushOk(Array.from({ length: 20 }, (_, i) => deviceChange(`big-${i}`, `A device with a long enough name ${i}`, at)));
    const encodingFor = async (accept: string): Promise<string | undefined> => {
      const res = await b.syncRequest({ last_sync: null }, { headers: { 'accept-encoding': accept } });
      expect(res.status).toBe(200);
      const enc = res.headers['content-encoding'];
      if (enc === 'gzip') expect(JSON.parse(gunzipSync(res.raw).toString()).type).toBe('sync_delta');
      return typeof enc === 'string' ? enc : undefined;
    };
    expect(await encodingFor('gzip')).toBe('gzip');
    expect(await encodingFor('*')).toBe('gzip');
    expect(await encodingFor('gzip;q=0, *')).toBeUndefined();
    expect(await encodingFor('*;q=0')).toBeUndefined();
    expect(await encodingFor('identity')).toBeUndefined();
  });

  it('reads Accept-Encoding as RFC 9110 §12.5.3 says', () => {
    expect(acceptsGzip('gzip')).toBe(true);
    expect(acceptsGzip('GZIP;Q=0.5')).toBe(true);
    expect(acceptsGzip('x-gzip')).toBe(true);
    expect(acceptsGzip('gzip;q=0, *')).toBe(false);
    expect(acceptsGzip('*, gzip;q=0')).toBe(false);
    expect(acceptsGzip('gzip;q=0.000')).toBe(false);
    expect(acceptsGzip('br, *;q=0.1')).toBe(true);
    expect(acceptsGzip('*;q=0')).toBe(false);
    expect(acceptsGzip('gzip;q=2')).toBe(false); // not a qvalue
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip(['br', 'gzip'])).toBe(true);
  });
});

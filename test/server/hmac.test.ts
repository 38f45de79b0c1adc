import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce, signRequest } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, responseSignatureOk, send } from './client.js';

/** Headers signing `body` for `path` with the credential, now. */
function signedFor(creds: { client_id: string; client_secret: string }, path: string, body: Buffer): Record<string, string> {
  return signRequest({
    secret: creds.client_secret,
    method: 'POST',
    path,
    clientId: creds.client_id,
    body,
    timestampSeconds: Math.floor(Date.now() / 1000),
    nonce: newNonce(),
  });
}

forEachBackend((backend) => {
  describe(`HMAC signing (required) [${backend.name}]`, () => {
    let ts: TestServer;
    let c: TestClient;
    beforeAll(async () => {
      ts = await startTestServer({ hmac: { required: true, windowSeconds: 300 } }, { backend });
      c = new TestClient(ts.url, await ts.addClient('home-h'), {});
      c = new TestClient(ts.url, c.creds, { sign: c.creds });
      await c.login();
    });
    afterAll(async () => {
      await ts.close();
    });

    it('accepts a signed request and signs the response, bound to the request nonce', async () => {
      const nonce = newNonce();
      const res = await c.syncRequest({}, { nonce });
      expect(res.status).toBe(200);
      expect(responseSignatureOk(res, c.creds, nonce)).toBe(true);
      expect(responseSignatureOk(res, c.creds, newNonce())).toBe(false);
    });

    it('signs over the body bytes as sent: gzip request and gzip response', async () => {
      const nonce = newNonce();
      const changes = Array.from({ length: 30 }, (_, i) => deviceChange(`dev-h-${i}`, `Device ${i} in the hall`, isoAt(Date.now())));
      const res = await c.push(changes, { gzip: true, acceptGzip: true, nonce });
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding']).toBe('gzip');
      expect(responseSignatureOk(res, c.creds, nonce)).toBe(true);
    });

    it('refuses an unsigned request with 401 BAD_SIGNATURE (auth and sync endpoints)', async () => {
      const res = await c.syncRequest({}, { sign: undefined });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe('BAD_SIGNATURE');
      const token = await send(ts.url, '/api/v1/auth/token', { client_id: c.creds.client_id, client_secret: c.creds.client_secret });
      expect(token.status).toBe(401);
      expect(token.json.code).toBe('BAD_SIGNATURE');
    });

    it('refuses a tampered body', async () => {
      const body = Buffer.from(JSON.stringify({ type: 'sync_request', client_id: c.creds.client_id }));
      const headers = signedFor(c.creds, '/api/v1/sync/request', body);
      const tampered = Buffer.from(body.toString().replace('sync_request"', 'sync_request","include_deleted":true'));
      const res = await c.post('/api/v1/sync/request', undefined, { sign: undefined, rawBody: tampered, headers });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe('BAD_SIGNATURE');
      expect(res.json.message).toContain('mismatch');
    });

    it('refuses a signature made with another secret, or over another path', async () => {
      const other = await ts.addClient('home-h');
      const wrongKey = await c.syncRequest({}, { sign: { ...c.creds, client_secret: other.client_secret } });
      expect(wrongKey.status).toBe(401);
      const body = Buffer.from(JSON.stringify({ type: 'sync_request', client_id: c.creds.client_id }));
      const headers = signedFor(c.creds, '/api/v1/sync/ack', body);
      const wrongPath = await c.post('/api/v1/sync/request', undefined, { sign: undefined, rawBody: body, headers });
      expect(wrongPath.status).toBe(401);
      expect(wrongPath.json.code).toBe('BAD_SIGNATURE');
    });

    it('refuses a replayed nonce', async () => {
      const nonce = newNonce();
      const first = await c.syncRequest({}, { nonce });
      expect(first.status).toBe(200);
      const replay = await c.syncRequest({}, { nonce });
      expect(replay.status).toBe(401);
      expect(replay.json.code).toBe('BAD_SIGNATURE');
      expect(replay.json.message).toContain('replayed');
    });

    it('refuses a stale or future timestamp (outside ±300 s)', async () => {
      const now = Math.floor(Date.now() / 1000);
      // A few seconds past the window: a loaded machine may tick a second between here and the server's check.
      for (const at of [now - 305, now + 305]) {
        const res = await c.syncRequest({}, { signAt: at });
        expect(res.status).toBe(401);
        expect(res.json.message).toContain('stale');
      }
      expect((await c.syncRequest({}, { signAt: now - 250 })).status).toBe(200);
    });

    it('refuses a client-id header that differs from the token client or the body client_id', async () => {
      const other = await ts.addClient('home-h');
      const res = await c.syncRequest({}, { headers: { 'x-inbetweenies-client-id': other.client_id } });
      expect(res.status).toBe(401);
      const token = await send(
        ts.url,
        '/api/v1/auth/token',
        { client_id: c.creds.client_id, client_secret: c.creds.client_secret },
        { sign: other },
      );
      expect(token.status).toBe(401);
      expect(token.json.code).toBe('BAD_SIGNATURE');
    });

    it('signs error responses to a verified request', async () => {
      const nonce = newNonce();
      const res = await c.post('/api/v1/sync/request', { type: 'sync_request' }, { nonce });
      expect(res.status).toBe(400);
      expect(responseSignatureOk(res, c.creds, nonce)).toBe(true);
    });
  });

  describe(`HMAC optional (default without config) [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({}, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('accepts unsigned requests, still verifies signed ones', async () => {
      const creds = await ts.addClient('home-o');
      const plain = new TestClient(ts.url, creds);
      await plain.login();
      const res = await plain.syncRequest();
      expect(res.status).toBe(200);
      expect(res.headers['x-inbetweenies-signature']).toBeUndefined();
      const badSig = await plain.syncRequest({}, { sign: { ...creds, client_secret: 'wrong' } });
      expect(badSig.status).toBe(401);
      expect(badSig.json.code).toBe('BAD_SIGNATURE');
    });
  });
});

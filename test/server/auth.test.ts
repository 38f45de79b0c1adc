import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, send } from './client.js';

forEachBackend((backend) => {
  describe(`auth, expiry, refresh [${backend.name}]`, () => {
    let ts: TestServer;
    let now = Date.now();
    beforeAll(async () => {
      ts = await startTestServer({ tokens: { accessTtlSeconds: 60, refreshTtlSeconds: 600 } }, { backend, clock: () => now });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('issues a bearer pair for valid credentials', async () => {
      const creds = await ts.addClient('home-a');
      const res = await send(ts.url, '/api/v1/auth/token', { client_id: creds.client_id, client_secret: creds.client_secret });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ token_type: 'Bearer', expires_in: 60, refresh_expires_in: 600, home_id: 'home-a' });
      expect(res.json.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(res.json.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it('refuses bad credentials with 401 UNAUTHORIZED', async () => {
      const creds = await ts.addClient('home-a');
      for (const body of [
        { client_id: creds.client_id, client_secret: 'wrong' },
        { client_id: 'gw-nobody', client_secret: creds.client_secret },
        { client_id: creds.client_id, client_secret: `${creds.client_secret}x` },
      ]) {
        const res = await send(ts.url, '/api/v1/auth/token', body);
        expect(res.status).toBe(401);
        expect(res.json.code).toBe('UNAUTHORIZED');
      }
    });

    it('refuses sync calls without or with an unknown bearer token', async () => {
      const creds = await ts.addClient('home-a');
      const body = { type: 'sync_request', client_id: creds.client_id };
      const none = await send(ts.url, '/api/v1/sync/request', body);
      expect(none.status).toBe(401);
      expect(none.json.code).toBe('UNAUTHORIZED');
      const unknown = await send(ts.url, '/api/v1/sync/request', body, { token: 'x'.repeat(43) });
      expect(unknown.status).toBe(401);
      expect(unknown.json.code).toBe('UNAUTHORIZED');
    });

    it('answers an expired access token with 401 AUTH_EXPIRED, and refresh issues a new pair', async () => {
      const c = new TestClient(ts.url, await ts.addClient('home-a'));
      await c.login();
      expect((await c.syncRequest()).status).toBe(200);
      now += 61_000;
      const expired = await c.syncRequest();
      expect(expired.status).toBe(401);
      expect(expired.json.code).toBe('AUTH_EXPIRED');
      const oldRefresh = c.refreshToken;
      const refreshed = await send(ts.url, '/api/v1/auth/refresh', { refresh_token: oldRefresh });
      expect(refreshed.status).toBe(200);
      expect(refreshed.json.refresh_token).not.toBe(oldRefresh);
      c.token = refreshed.json.access_token;
      expect((await c.syncRequest()).status).toBe(200);
      const reused = await send(ts.url, '/api/v1/auth/refresh', { refresh_token: oldRefresh });
      expect(reused.status).toBe(401);
      expect(reused.json.code).toBe('UNAUTHORIZED');
    });

    it('answers an expired refresh token with AUTH_EXPIRED; an access token is no refresh token', async () => {
      const c = new TestClient(ts.url, await ts.addClient('home-a'));
      await c.login();
      const asRefresh = await send(ts.url, '/api/v1/auth/refresh', { refresh_token: c.token });
      expect(asRefresh.status).toBe(401);
      now += 601_000;
      const res = await send(ts.url, '/api/v1/auth/refresh', { refresh_token: c.refreshToken });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe('AUTH_EXPIRED');
    });
  });

  describe(`homes are separate namespaces [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({}, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('never shows one home the entities of another, even with the same entity ids', async () => {
      const a = new TestClient(ts.url, await ts.addClient('home-A'));
      const b = new TestClient(ts.url, await ts.addClient('home-B'));
      await a.login();
      await b.login();
      const t = Date.now();
      await a.pushOk([deviceChange('dev-1', 'A lamp', isoAt(t)), deviceChange('dev-a-only', 'A only', isoAt(t))]);
      const pushB = await b.pushOk([deviceChange('dev-1', 'B lamp', isoAt(t - 60_000))]);
      // an older write in home B does not lose against home A's newer version: it is a different entity
      expect(pushB.applied[0]?.status).toBe('applied');
      expect(pushB.conflicts).toEqual([]);
      const seenByB = await b.pullAll(null);
      expect(seenByB.changes.map((ch) => [ch.entity_id, ch.data.name])).toEqual([['dev-1', 'B lamp']]);
      const seenByA = await a.pullAll(null);
      expect(seenByA.changes.map((ch) => ch.data.name).sort()).toEqual(['A lamp', 'A only']);
      expect(await ts.server.entities('home-B')).toHaveLength(1);
    });

    it('refuses a message whose client_id is another client with 403 FORBIDDEN', async () => {
      const a = new TestClient(ts.url, await ts.addClient('home-A'));
      const b = await ts.addClient('home-B');
      await a.login();
      const req = await a.post('/api/v1/sync/request', { type: 'sync_request', client_id: b.client_id });
      expect(req.status).toBe(403);
      expect(req.json.code).toBe('FORBIDDEN');
      const push = await a.post('/api/v1/sync/push', { type: 'sync_push', client_id: b.client_id, changes: [] });
      expect(push.status).toBe(403);
      const ack = await a.post('/api/v1/sync/ack', { type: 'sync_ack', client_id: b.client_id, sync_completed_at: isoAt(Date.now()) });
      expect(ack.status).toBe(403);
    });

    it('rejects a pushed change naming another home with FORBIDDEN, and applies the rest', async () => {
      const a = new TestClient(ts.url, await ts.addClient('home-A'));
      await a.login();
      const t = isoAt(Date.now());
      const result = await a.pushOk([
        deviceChange('dev-x', 'Intruder', t, { home_id: 'home-B' }),
        deviceChange('dev-y', 'Mine', t, { home_id: 'home-A' }),
      ]);
      expect(result.applied.map((r) => [r.status, r.error?.code])).toEqual([
        ['rejected', 'FORBIDDEN'],
        ['applied', undefined],
      ]);
      expect((await ts.server.entities('home-B')).some((e) => e.entity_id === 'dev-x')).toBe(false);
    });
  });

  describe(`rate limit [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({ rateLimit: { ratePerSecond: 0.05, burst: 3 } }, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('answers 429 RATE_LIMITED with Retry-After once a client exhausts its bucket; others are unaffected', async () => {
      const c = new TestClient(ts.url, await ts.addClient('home-r'));
      const other = new TestClient(ts.url, await ts.addClient('home-r'));
      await c.login();
      await other.login();
      const statuses: number[] = [];
      let limited;
      for (let i = 0; i < 5; i++) {
        const res = await c.syncRequest();
        statuses.push(res.status);
        if (res.status === 429) limited = res;
      }
      expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
      expect(statuses[3]).toBe(429);
      expect(limited?.json.code).toBe('RATE_LIMITED');
      const retryAfter = Number(limited?.headers['retry-after']);
      expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
      expect(limited?.json.retry_after).toBe(retryAfter);
      expect((await other.syncRequest()).status).toBe(200);
    });

    it('limits the unauthenticated auth endpoints per address', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        statuses.push((await send(ts.url, '/api/v1/auth/token', { client_id: 'gw-x', client_secret: 'nope' })).status);
      }
      expect(statuses).toContain(429);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(3);
    });

    it('counts requests with unknown bearer tokens against the address (token guessing)', async () => {
      const own = await startTestServer({ rateLimit: { ratePerSecond: 0.05, burst: 3 } }, { backend });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 5; i++) {
          const res = await send(own.url, '/api/v1/sync/request', { type: 'sync_request', client_id: 'x' }, { token: `guess${i}` });
          statuses.push(res.status);
        }
        expect(statuses).toEqual([401, 401, 401, 429, 429]);
      } finally {
        await own.close();
      }
    });
  });
});

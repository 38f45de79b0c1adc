/**
 * Live waits (docs/protocol.md §Live waits, an extension): a sync_request with `wait` is held while its delta is
 * empty, woken by another client's push in its home, answered empty on timeout or shutdown. Real server on port 0.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newNonce, signRequest } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, responseSignatureOk, send, stateChange, type RawResponse, type SendOptions } from './client.js';

async function loggedIn(ts: TestServer, home: string, signed = false): Promise<TestClient> {
  const creds = await ts.addClient(home);
  const c = new TestClient(ts.url, creds, signed ? { sign: creds } : {});
  await c.login();
  return c;
}

interface Timed {
  readonly res: RawResponse;
  readonly ms: number;
}

/** Opens a live wait; resolves with the answer and how long it took. */
function liveWait(c: TestClient, lastSync: string | null, wait: number, extra: Record<string, unknown> = {}, opts: SendOptions = {}): Promise<Timed> {
  const started = performance.now();
  return c
    .syncRequest({ last_sync: lastSync, include_deleted: true, wait, ...extra }, opts)
    .then((res) => ({ res, ms: performance.now() - started }));
}

/** Resolves once `predicate` holds (the server's gauges), failing after `ms`. */
async function until(predicate: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The watermark of a client that has seen everything of its home so far. */
async function watermark(c: TestClient): Promise<string> {
  return (await c.pullAll(null)).serverTime;
}

forEachBackend((backend) => {
  describe(`live waits [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({ live: { maxWaitSeconds: 25, maxPerClient: 2 } }, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('health advertises the capability with the server cap', async () => {
      const res = await send(ts.url, '/api/v1/health', undefined, { method: 'GET' });
      expect(res.status).toBe(200);
      expect(res.json.capabilities.live_wait).toEqual({ max_wait_seconds: 25 });
    });

    it("wakes within milliseconds of another client's push in the home, with that change", async () => {
      const gw = await loggedIn(ts, 'home-wake');
      const app = await loggedIn(ts, 'home-wake');
      const w = await watermark(gw);
      const held = liveWait(gw, w, 20);
      await until(() => ts.server.liveStats().held === 1);
      const pushedAt = performance.now();
      await app.pushOk([stateChange('plug-1', { power: 'on' }, isoAt(Date.now()))]);
      const { res, ms } = await held;
      const wokeAfterPushMs = performance.now() - pushedAt;
      expect(res.status).toBe(200);
      expect(res.json.changes.map((c: { entity_id: string }) => c.entity_id)).toEqual(['plug-1']);
      expect(res.json.changes[0].data.state).toEqual({ power: 'on' });
      expect(res.json.live).toMatchObject({ reason: 'change', max_wait_seconds: 25 });
      expect(res.json.server_time > w).toBe(true);
      // A generous correctness bound, not a benchmark (bench:latency measures it): far below the 20 s wait.
      expect(wokeAfterPushMs).toBeLessThan(1000);
      expect(ms).toBeLessThan(5000);
    });

    it('answers at once, reason "data", when the delta is not empty; a cursor page is never held', async () => {
      const gw = await loggedIn(ts, 'home-data');
      const app = await loggedIn(ts, 'home-data');
      const w = await watermark(gw);
      await app.pushOk([deviceChange('d-1', 'Lamp', isoAt(Date.now()))]);
      const { res, ms } = await liveWait(gw, w, 20);
      expect(res.json.changes).toHaveLength(1);
      expect(res.json.live.reason).toBe('data');
      expect(ms).toBeLessThan(2000);
    });

    it("is not woken by the client's own push: it times out empty after its wait", async () => {
      const gw = await loggedIn(ts, 'home-own');
      const w = await watermark(gw);
      const held = liveWait(gw, w, 1);
      await until(() => ts.server.liveStats().held === 1);
      const wakeups = ts.server.liveStats().wakeups;
      await gw.pushOk([stateChange('plug-own', { power: 'off' }, isoAt(Date.now()))]);
      const { res, ms } = await held;
      expect(ts.server.liveStats().wakeups).toBe(wakeups); // not even woken to find nothing
      expect(res.status).toBe(200);
      expect(res.json.changes).toEqual([]);
      expect(res.json.live.reason).toBe('timeout');
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(res.json.server_time > w).toBe(true); // a fresh watermark: the client's next wait starts after it
    });

    it('keeps holding when a wake-up brings nothing for its filter, then times out', async () => {
      const gw = await loggedIn(ts, 'home-filter');
      const app = await loggedIn(ts, 'home-filter');
      const w = await watermark(gw);
      const held = liveWait(gw, w, 1, { entity_types: ['rooms'] });
      await until(() => ts.server.liveStats().held === 1);
      const wakeups = ts.server.liveStats().wakeups;
      await app.pushOk([deviceChange('d-f', 'Not a room', isoAt(Date.now()))]);
      const { res, ms } = await held;
      expect(ts.server.liveStats().wakeups).toBe(wakeups + 1);
      expect(res.json.changes).toEqual([]);
      expect(res.json.live.reason).toBe('timeout');
      expect(ms).toBeGreaterThanOrEqual(950);
    });

    it('caps the wait at the server maximum and says so', async () => {
      const small = await startTestServer({ live: { maxWaitSeconds: 0.5 } }, { backend });
      try {
        const gw = await loggedIn(small, 'home-cap');
        const { res, ms } = await liveWait(gw, await watermark(gw), 3600);
        expect(res.json.live).toMatchObject({ reason: 'timeout', max_wait_seconds: 0.5 });
        expect(ms).toBeLessThan(2000);
      } finally {
        await small.close();
      }
    });

    it('bounds held waits per client: a third concurrent wait is 429 TOO_MANY_WAITS', async () => {
      const gw = await loggedIn(ts, 'home-bound');
      const app = await loggedIn(ts, 'home-bound');
      const w = await watermark(gw);
      const first = liveWait(gw, w, 20);
      const second = liveWait(gw, w, 20);
      await until(() => ts.server.liveStats().held === 2);
      const third = await liveWait(gw, w, 20);
      expect(third.res.status).toBe(429);
      expect(third.res.json.code).toBe('TOO_MANY_WAITS');
      expect(third.res.headers['retry-after']).toBe('1');
      await app.pushOk([deviceChange('d-b', 'Wake both', isoAt(Date.now()))]);
      for (const held of await Promise.all([first, second])) expect(held.res.json.live.reason).toBe('change');
    });

    it('releases the slot of a client that disconnects while held', async () => {
      const gw = await loggedIn(ts, 'home-gone');
      const w = await watermark(gw);
      const before = ts.server.liveStats();
      const controllers = [new AbortController(), new AbortController()];
      const waits = controllers.map((ac) => liveWait(gw, w, 20, {}, { signal: ac.signal }).catch((err: unknown) => err));
      await until(() => ts.server.liveStats().held === before.held + 2);
      for (const ac of controllers) ac.abort();
      await Promise.all(waits);
      await until(() => ts.server.liveStats().held === before.held, 1000);
      expect(ts.server.liveStats().disconnected).toBe(before.disconnected + 2);
      // Both slots are free again: two new waits are held, not refused.
      const again = [liveWait(gw, w, 0.3), liveWait(gw, w, 0.3)];
      for (const held of await Promise.all(again)) expect(held.res.json.live.reason).toBe('timeout');
    });
  });

  describe(`live waits: server bound, shutdown, HMAC, gzip, paging, rate limit [${backend.name}]`, () => {
    let ts: TestServer | undefined;
    afterEach(async () => {
      await ts?.close();
      ts = undefined;
    });

    it('bounds held waits per server: one more is 503 SERVER_BUSY with Retry-After', async () => {
      ts = await startTestServer({ live: { maxTotal: 2 } }, { backend });
      const a = await loggedIn(ts, 'home-a');
      const b = await loggedIn(ts, 'home-b');
      const c = await loggedIn(ts, 'home-c');
      const held = [liveWait(a, await watermark(a), 1), liveWait(b, await watermark(b), 1)];
      await until(() => ts?.server.liveStats().held === 2);
      const refused = await liveWait(c, await watermark(c), 1);
      expect(refused.res.status).toBe(503);
      expect(refused.res.json.code).toBe('SERVER_BUSY');
      expect(Number(refused.res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(ts.server.liveStats().refusedServerFull).toBe(1);
      await Promise.all(held);
    });

    it('answers every held wait at once on close(): 200, empty delta, reason "shutdown", Connection: close', async () => {
      ts = await startTestServer({}, { backend });
      const gw = await loggedIn(ts, 'home-close');
      const other = await loggedIn(ts, 'home-close-2');
      const held = [liveWait(gw, await watermark(gw), 25), liveWait(other, await watermark(other), 25)];
      await until(() => ts?.server.liveStats().held === 2);
      const closing = performance.now();
      await ts.close();
      const closedMs = performance.now() - closing;
      for (const { res } of await Promise.all(held)) {
        expect(res.status).toBe(200);
        expect(res.json.changes).toEqual([]);
        expect(res.json.live.reason).toBe('shutdown');
        expect(res.headers.connection).toBe('close');
      }
      expect(closedMs).toBeLessThan(2000); // not after the 25 s wait, nor the 5 s forced drain
    });

    it('signs a held answer like any other, bound to its nonce and stamped when answered; a replay is refused', async () => {
      ts = await startTestServer({ hmac: { required: true } }, { backend });
      const gw = await loggedIn(ts, 'home-hmac', true);
      const w = await watermark(gw);
      const path = '/api/v1/sync/request';
      const bytes = Buffer.from(JSON.stringify({ type: 'sync_request', client_id: gw.creds.client_id, last_sync: w, wait: 1.2 }));
      const nonce = newNonce();
      const signedAt = Math.floor(Date.now() / 1000);
      const headers = signRequest({ secret: gw.creds.client_secret, method: 'POST', path, clientId: gw.creds.client_id, body: bytes, timestampSeconds: signedAt, nonce });
      const res = await send(ts.url, path, undefined, { rawBody: bytes, token: gw.token, headers });
      expect(res.status).toBe(200);
      expect(res.json.live.reason).toBe('timeout');
      expect(responseSignatureOk(res, gw.creds, nonce)).toBe(true);
      expect(responseSignatureOk(res, gw.creds, newNonce())).toBe(false);
      expect(Number(res.headers['x-inbetweenies-timestamp'])).toBeGreaterThanOrEqual(signedAt + 1);
      const replay = await send(ts.url, path, undefined, { rawBody: bytes, token: gw.token, headers });
      expect(replay.status).toBe(401);
      expect(replay.json.code).toBe('BAD_SIGNATURE');
      expect(ts.server.liveStats().opened).toBe(1);
    });

    it('gzips a large woken delta and pages one larger than pageSize as usual', async () => {
      ts = await startTestServer({ pageSize: 50 }, { backend });
      const gw = await loggedIn(ts, 'home-big');
      const app = await loggedIn(ts, 'home-big');
      const w = await watermark(gw);
      const held = liveWait(gw, w, 20, {}, { acceptGzip: true });
      await until(() => ts?.server.liveStats().held === 1);
      const t = Date.now();
      await app.pushOk(Array.from({ length: 120 }, (_, i) => stateChange(`s-${i}`, { level: i, label: 'x'.repeat(40) }, isoAt(t))));
      const { res } = await held;
      expect(res.headers['content-encoding']).toBe('gzip');
      expect(res.raw.length).toBeLessThan(JSON.stringify(res.json).length / 3);
      expect(res.json.live.reason).toBe('change');
      expect(res.json.changes).toHaveLength(50);
      expect(res.json.more).toBe(true);
      const ids = res.json.changes.map((c: { entity_id: string }) => c.entity_id);
      let cursor: string | null = res.json.cursor;
      while (cursor !== null) {
        const page = await liveWait(gw, w, 20, { cursor }); // a cursor page is answered at once
        expect(page.ms).toBeLessThan(2000);
        expect(page.res.json.server_time).toBe(res.json.server_time);
        ids.push(...page.res.json.changes.map((c: { entity_id: string }) => c.entity_id));
        cursor = page.res.json.more ? page.res.json.cursor : null;
      }
      expect(new Set(ids).size).toBe(120);
    });

    it('limits a tight re-open loop with 429, while a client re-opening after each wake-up never is', async () => {
      ts = await startTestServer({ rateLimit: { ratePerSecond: 2, burst: 6 } }, { backend });
      const looper = await loggedIn(ts, 'home-loop');
      const gw = await loggedIn(ts, 'home-calm');
      const app = await loggedIn(ts, 'home-calm');
      // The looper opens a wait and drops it at once, again and again.
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const ac = new AbortController();
        const opened = looper.syncRequest({ last_sync: null, wait: 20 }, { signal: ac.signal }).catch(() => undefined);
        // dropped after 60 ms: 12 opens in well under a second against 2/s (a store round trip on PostgreSQL fits)
        setTimeout(() => ac.abort(), 60);
        const res = await opened;
        if (res !== undefined) statuses.push(res.status);
      }
      expect(statuses).toContain(429);
      // The calm gateway holds a wait through five wake-ups, re-opening after each: never refused.
      let w = await watermark(gw);
      for (let i = 0; i < 5; i++) {
        const held = liveWait(gw, w, 20);
        await until(() => ts?.server.liveStats().held === 1);
        await app.pushOk([stateChange(`calm-${i}`, { n: i }, isoAt(Date.now()))]);
        const { res } = await held;
        expect(res.status).toBe(200);
        expect(res.json.live.reason).toBe('change');
        w = res.json.server_time;
        await new Promise((r) => setTimeout(r, 600)); // the app's own pace: about one change a second
      }
    });

    it('is not cut by the HTTP keep-alive or request timeouts while held', async () => {
      ts = await startTestServer({ live: { maxWaitSeconds: 6 } }, { backend });
      const gw = await loggedIn(ts, 'home-long');
      const { res, ms } = await liveWait(gw, await watermark(gw), 6);
      expect(res.status).toBe(200);
      expect(res.json.live.reason).toBe('timeout');
      expect(ms).toBeGreaterThanOrEqual(5900); // longer than the server's 5 s keepAliveTimeout
    });

    it('off by configuration: no capability, `wait` ignored, no `live` field (a seed server)', async () => {
      ts = await startTestServer({ live: { enabled: false } }, { backend });
      const health = await send(ts.url, '/api/v1/health', undefined, { method: 'GET' });
      expect(health.json.capabilities?.live_wait).toBeUndefined();
      const gw = await loggedIn(ts, 'home-off');
      const { res, ms } = await liveWait(gw, await watermark(gw), 20);
      expect(res.status).toBe(200);
      expect(res.json.live).toBeUndefined();
      expect(ms).toBeLessThan(2000);
    });
  });
});

/**
 * The client helper of live waits (src/sync/live.ts) through the app session: capability discovery against servers
 * with, without and far from live waits, and a held request whose HTTP timeout outlasts the transport's default.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppSession } from '../../src/app/session.js';
import { GatewayError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { fetchDelta, liveEnd, liveWaitSeconds, type Caller } from '../../src/sync/live.js';
import { connectApp } from '../helpers/app-client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

function session(url: string, creds: { client_id: string; client_secret: string }): AppSession {
  return new AppSession({ serverUrl: url, clientId: creds.client_id, clientSecret: creds.client_secret, logger: silentLogger() });
}

describe('live-wait discovery', () => {
  let on: TestServer;
  let off: TestServer;
  let seedOnly: Server;
  let seedUrl: string;
  beforeAll(async () => {
    on = await startTestServer({ hmac: { required: true }, live: { maxWaitSeconds: 20 } });
    off = await startTestServer({ live: { enabled: false } });
    // A server of the seed without a health endpoint (the Python FunkyGibbon v1 answers 404 there).
    seedOnly = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"detail":"Not Found"}');
    });
    await new Promise<void>((resolve) => seedOnly.listen(0, '127.0.0.1', resolve));
    seedUrl = `http://127.0.0.1:${(seedOnly.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await on.close();
    await off.close();
    await new Promise((resolve) => seedOnly.close(resolve));
  });

  it('finds the capability, its absence, and a server without health; an unreachable one is an error', async () => {
    const a = session(on.url, await on.addClient('h'));
    const b = session(off.url, await off.addClient('h'));
    const c = session(seedUrl, { client_id: 'x', client_secret: 'y' });
    const d = session('http://127.0.0.1:1', { client_id: 'x', client_secret: 'y' });
    try {
      const support = await a.probeLive();
      expect(support).toEqual({ maxWaitSeconds: 20 });
      expect(liveWaitSeconds(support ?? { maxWaitSeconds: 1 })).toBe(20);
      expect(liveWaitSeconds({ maxWaitSeconds: 60 })).toBe(25);
      expect(await b.probeLive()).toBeUndefined();
      expect(await c.probeLive()).toBeUndefined();
      await expect(d.probeLive()).rejects.toMatchObject({ code: 'TRANSPORT' });
    } finally {
      await Promise.all([a, b, c, d].map((s) => s.close()));
    }
  });

  it('reads how a wait ended; a server that ignored `wait` is "unsupported"', async () => {
    const s = session(off.url, await off.addClient('h2'));
    try {
      const full = await s.delta({ last_sync: null });
      const next = await s.delta({ last_sync: full.serverTime }, 5);
      expect(next.live).toBeUndefined();
      expect(liveEnd(next.live)).toBe('unsupported');
      expect(liveEnd({ reason: 'change', waited_ms: 3, max_wait_seconds: 25 })).toBe('change');
      expect(liveEnd({ reason: 'something-new', waited_ms: 3, max_wait_seconds: 25 })).toBe('timeout');
    } finally {
      await s.close();
    }
  });

  it('holds past the transport headers timeout (15 s default) without a TIMEOUT: the wait gets its own', async () => {
    const creds = await on.addClient('h3');
    const s = session(on.url, creds);
    const other = await connectApp(on.url, await on.addClient('h3'));
    try {
      const full = await s.delta({ last_sync: null });
      const held = s.delta({ last_sync: full.serverTime, include_deleted: true }, 20);
      await new Promise((r) => setTimeout(r, 16_000));
      await other.setState('plug-late', { power: 'on' });
      const woken = await held;
      expect(woken.live?.reason).toBe('change');
      expect(woken.changes.map((c) => c.entity_id)).toEqual(['plug-late']);
    } finally {
      await other.close();
      await s.close();
    }
  }, 40_000);

  it('asks only the first page to be held, with an HTTP timeout of the wait plus a margin', async () => {
    const specs: { body: unknown; timeoutMs: number | undefined }[] = [];
    const pages = [
      { type: 'sync_delta', server_time: '2026-01-01T00:00:01.000000Z', changes: [], conflicts: [], more: true, cursor: 'c1', live: { reason: 'change', waited_ms: 5, max_wait_seconds: 25 } },
      { type: 'sync_delta', server_time: '2026-01-01T00:00:01.000000Z', changes: [], conflicts: [], more: false, cursor: null },
    ];
    const call: Caller = async (spec) => {
      specs.push({ body: spec.body, timeoutMs: spec.timeoutMs });
      return { value: spec.schema.parse(pages[specs.length - 1]), status: 200, sentAtMs: 0, receivedAtMs: 0, serverDateMs: undefined };
    };
    const fetched = await fetchDelta(call, { type: 'sync_request', client_id: 'c', last_sync: null }, 25);
    expect(fetched.pages).toBe(2);
    expect(specs[0]).toEqual({ body: { type: 'sync_request', client_id: 'c', last_sync: null, wait: 25 }, timeoutMs: 40_000 });
    expect(specs[1]).toEqual({ body: { type: 'sync_request', client_id: 'c', last_sync: null, cursor: 'c1' }, timeoutMs: undefined });
    // A page that says more without a cursor (a broken server) is refused, not looped on.
    const broken: Caller = async (spec) => ({ value: spec.schema.parse({ ...pages[0], cursor: null }), status: 200, sentAtMs: 0, receivedAtMs: 0, serverDateMs: undefined });
    await expect(fetchDelta(broken, { type: 'sync_request', client_id: 'c' })).rejects.toBeInstanceOf(GatewayError);
  });
});

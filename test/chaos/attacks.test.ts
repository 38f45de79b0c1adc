/**
 * Attacks, HTTP/sync side: each attack is refused with the right error AND stores nothing (no entity, no push
 * result). The single-refusal cases are in test/server/{hmac,auth,http}.test.ts; this file checks the "nothing
 * stored" half. Then a full gateway + server run logs at trace level into memory and no secret appears in the logs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createLogger } from '../../src/log.js';
import { newNonce, signRequest } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { connectApp } from '../helpers/app-client.js';
import { send, TestClient, deviceChange, isoAt } from '../server/client.js';

let now = Date.now();
const clock = (): number => now;

// A push that inflates to 200 MiB. Built before any server starts: compressing it blocks this process (and the
// in-process server) for seconds, and such a stall between two requests lets the server's keep-alive timer close the
// idle connection the next request reuses (ECONNRESET, a flake under load).
const BOMB = gzipSync(Buffer.concat([Buffer.from('{"type":"sync_push","client_id":"x","changes":[],"pad":"'), Buffer.alloc(200 * 1024 * 1024, 0x61), Buffer.from('"}')]));

describe('attacks on the sync API store nothing', () => {
  let ts: TestServer;
  let victim: TestClient;
  let attacker: TestClient;
  let n = 0;
  beforeAll(async () => {
    ts = await startTestServer({ hmac: { required: true } }, { clock });
    const own = await ts.addClient('home-victim');
    victim = new TestClient(ts.url, own, { sign: own });
    const other = await ts.addClient('home-attacker');
    attacker = new TestClient(ts.url, other, { sign: other });
    await victim.login();
    await attacker.login();
  });
  afterAll(async () => {
    await ts.close();
  });

  const push = (c: TestClient, id: string): Record<string, unknown> => ({ type: 'sync_push', client_id: c.creds.client_id, changes: [deviceChange(id, 'evil', isoAt(Date.now()))] });
  const nothingStored = async (id: string): Promise<void> => {
    for (const home of ['home-victim', 'home-attacker']) expect((await ts.server.entities(home)).filter((e) => e.entity_id === id)).toEqual([]);
  };
  const next = (): string => `attack-${(n += 1)}`;

  it('a tampered body (signed, then changed) → 401 BAD_SIGNATURE', async () => {
    const id = next();
    // Sign a harmless body, then send the evil body under that signature.
    const signedFor = Buffer.from(JSON.stringify(push(victim, 'harmless')));
    const headers = signRequest({ secret: victim.creds.client_secret, method: 'POST', path: '/api/v1/sync/push', clientId: victim.creds.client_id, body: signedFor, timestampSeconds: Math.floor(now / 1000), nonce: newNonce() });
    const res = await send(ts.url, '/api/v1/sync/push', undefined, { token: victim.token, rawBody: JSON.stringify(push(victim, id)), headers });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('BAD_SIGNATURE');
    await nothingStored(id);
  });

  it('a replayed request (same nonce) → 401 BAD_SIGNATURE, applied once', async () => {
    const id = next();
    const nonce = newNonce();
    const body = push(victim, id);
    expect((await victim.post('/api/v1/sync/push', body, { nonce })).status).toBe(200);
    const replay = await victim.post('/api/v1/sync/push', { ...body, changes: [deviceChange(`${id}-b`, 'evil', isoAt(Date.now()))] }, { nonce });
    expect(replay.status).toBe(401);
    expect(replay.json.code).toBe('BAD_SIGNATURE');
    await nothingStored(`${id}-b`);
  });

  it('a stale signature (10 min old) → 401 BAD_SIGNATURE', async () => {
    const id = next();
    const res = await victim.post('/api/v1/sync/push', push(victim, id), { signAt: Math.floor(now / 1000) - 600 });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('BAD_SIGNATURE');
    await nothingStored(id);
  });

  it('a forged token → 401; an expired token → 401 AUTH_EXPIRED', async () => {
    const id = next();
    const forged = await victim.post('/api/v1/sync/push', push(victim, id), { token: `${victim.token.slice(0, -4)}AAAA` });
    expect(forged.status).toBe(401);
    const c = new TestClient(ts.url, victim.creds, { sign: victim.creds });
    await c.login();
    now += 2 * 3600_000;
    try {
      const expired = await c.post('/api/v1/sync/push', push(c, id));
      expect(expired.status).toBe(401);
      expect(expired.json.code).toBe('AUTH_EXPIRED');
    } finally {
      now -= 2 * 3600_000;
    }
    await nothingStored(id);
  });

  it('cross-home: another home’s client_id in the body → 403 FORBIDDEN for reads and writes', async () => {
    const id = next();
    const write = await attacker.post('/api/v1/sync/push', push(victim, id));
    expect(write.status).toBe(403);
    expect(write.json.code).toBe('FORBIDDEN');
    const read = await attacker.post('/api/v1/sync/request', { type: 'sync_request', client_id: victim.creds.client_id, last_sync: null });
    expect(read.status).toBe(403);
    await nothingStored(id);
  });

  it('an oversized body → 413, a gzip bomb → 413', async () => {
    const id = next();
    const big = { ...push(victim, id), pad: 'x'.repeat(20 * 1024 * 1024) };
    const res = await victim.post('/api/v1/sync/push', big);
    expect(res.status).toBe(413);
    const bombed = await victim.post('/api/v1/sync/push', undefined, { rawBody: BOMB, headers: { 'content-encoding': 'gzip' } });
    expect(bombed.status).toBe(413);
    await nothingStored(id);
  }, 30_000);
});

describe('no secret in the logs of a full gateway + server run', () => {
  it('client secrets, access and refresh tokens never appear in any log line (trace level)', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ level: 'trace', destination: sink });
    const ts = await startTestServer({ hmac: { required: true }, tokens: { accessTtlSeconds: 2 } }, { logger });
    const creds = await ts.addClient('home-logs');
    const appCreds = await ts.addClient('home-logs');
    const gw = await startTestGateway({ serverUrl: ts.url, clientId: creds.client_id, clientSecret: creds.client_secret, logger });
    const secrets = new Set<string>([creds.client_secret, appCreds.client_secret]);
    try {
      const device = await gw.connect('dev-logs');
      await device.publishAsync('devices/lock-logs/state', JSON.stringify({ lock_state: 'locked' }), { qos: 1 });
      const app = await connectApp(ts.url, appCreds);
      await app.setState('lock-logs', { lock_state: 'unlocked' });
      await app.close();
      await send(ts.url, '/api/v1/auth/token', { client_id: creds.client_id, client_secret: 'wrong-password-123' });
      secrets.add('wrong-password-123');
      // Long enough for token expiry (2 s) and a renewal, and several cycles.
      await new Promise((r) => setTimeout(r, 3500));
      await waitFor(async () => (await ts.server.entities('home-logs')).length > 0, 5000, 'a sync');
      const store = gw.daemon.store;
      if (store === undefined) throw new Error('no store');
      const tokens = store.syncState.get('tokens');
      for (const v of Object.values((tokens ?? {}) as Record<string, unknown>)) if (typeof v === 'string' && v.length >= 16) secrets.add(v);
    } finally {
      await gw.close();
      await ts.close();
    }
    expect(secrets.size).toBeGreaterThanOrEqual(4); // both secrets, the bad password and at least one token
    const text = lines.join('');
    expect(lines.length).toBeGreaterThan(20);
    const leaks = [...secrets].filter((s) => text.includes(s));
    expect(leaks).toEqual([]);
  }, 30_000);
});

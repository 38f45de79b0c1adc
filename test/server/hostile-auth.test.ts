/**
 * Rate limits that cannot be turned against legitimate clients, and authentication that reveals nothing
 * (docs/protocol.md §Rate limits, §Authentication; docs/security.md §Sync server): per-client buckets only after the
 * signature verified, per-token buckets for unsigned requests, the address bucket keyed through trusted proxies only;
 * client ids cannot be confirmed; a refresh revokes the access token of its pair; refusals counted in metrics and
 * logged rate-limited with client id and address.
 */
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLog } from '../helpers/log-capture.js';
import type { Logger } from '../../src/log.js';
import { newNonce, signRequest } from '../../src/protocol/index.js';
import { ClientAddresses } from '../../src/server/http/client-address.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { send, TestClient } from './client.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function server(overrides: Parameters<typeof startTestServer>[0], logger?: Logger, clock?: () => number): Promise<TestServer> {
  const ts = await startTestServer(overrides, { ...(logger ? { logger } : {}), ...(clock ? { clock } : {}) });
  cleanup.push(() => ts.close());
  return ts;
}


const from = (address: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': address } });
const ATTACKER = '203.0.113.9';
const VICTIM = '198.51.100.7';

describe('the client address, through trusted proxies only', () => {
  it('reads X-Forwarded-For from the right, from trusted proxies only', () => {
    const none = new ClientAddresses([]);
    expect(none.of('127.0.0.1', '1.2.3.4')).toBe('127.0.0.1');
    const proxies = new ClientAddresses(['127.0.0.1', '10.0.0.0/8', '::1']);
    expect(proxies.of('::ffff:127.0.0.1', '1.2.3.4')).toBe('1.2.3.4');
    expect(proxies.of('127.0.0.1', 'spoofed-by-client, 5.6.7.8, 10.1.2.3')).toBe('5.6.7.8');
    expect(proxies.of('127.0.0.1', '9.9.9.9, 5.6.7.8')).toBe('5.6.7.8'); // the client cannot choose its bucket
    expect(proxies.of('192.0.2.1', '1.2.3.4')).toBe('192.0.2.1'); // not a proxy: header ignored
    expect(proxies.of('127.0.0.1', undefined)).toBe('127.0.0.1');
    expect(() => new ClientAddresses(['10.0.0.0/33'])).toThrow(RangeError);
  });

  it('behind a trusted proxy, junk /auth/token calls lock out their sender only', async () => {
    const ts = await server({ trustedProxies: ['127.0.0.1'], rateLimit: { ratePerSecond: 0.01, burst: 5 } });
    const creds = await ts.addClient('home-p');
    const junk: number[] = [];
    for (let i = 0; i < 8; i++) junk.push((await send(ts.url, '/api/v1/auth/token', { client_id: 'gw-nobody', client_secret: 'x' }, from(ATTACKER))).status);
    expect(junk.slice(-3)).toEqual([429, 429, 429]);
    const login = await send(ts.url, '/api/v1/auth/token', { client_id: creds.client_id, client_secret: creds.client_secret }, from(VICTIM));
    expect(login.status).toBe(200);
  });

  it('without trusted proxies, X-Forwarded-For is ignored: varying it does not escape the bucket', async () => {
    const ts = await server({ rateLimit: { ratePerSecond: 0.01, burst: 5 } });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await send(ts.url, '/api/v1/auth/token', { client_id: 'gw-x', client_secret: 'x' }, from(`203.0.113.${i}`))).status);
    expect(statuses.slice(-3)).toEqual([429, 429, 429]);
  });
});

describe('a stolen bearer token without the secret cannot starve its client', () => {
  it('HMAC required: forged requests with the victim’s token are refused and limited by address; the victim goes on', async () => {
    const ts = await server({ hmac: { required: true }, trustedProxies: ['127.0.0.1'], rateLimit: { ratePerSecond: 0.01, burst: 10 } });
    const creds = await ts.addClient('home-s');
    const victim = new TestClient(ts.url, creds, { sign: creds, headers: { 'x-forwarded-for': VICTIM } });
    await victim.login();
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const forged = signRequest({ secret: 'guessed', method: 'POST', path: '/api/v1/sync/request', clientId: creds.client_id, body: Buffer.from('{}'), timestampSeconds: Math.floor(Date.now() / 1000), nonce: newNonce() });
      const res = await send(ts.url, '/api/v1/sync/request', undefined, { rawBody: '{}', token: victim.token, headers: { ...forged, 'x-forwarded-for': ATTACKER } });
      statuses.add(res.status);
      const unsigned = await send(ts.url, '/api/v1/sync/request', { type: 'sync_request', client_id: creds.client_id }, { token: victim.token, ...from(ATTACKER) });
      statuses.add(unsigned.status);
    }
    expect([...statuses].sort()).toEqual([401, 429]);
    for (let i = 0; i < 5; i++) expect((await victim.syncRequest()).status).toBe(200);
  });

  it('HMAC optional: unsigned requests are limited per token; the client’s signed requests have their own bucket', async () => {
    const ts = await server({ rateLimit: { ratePerSecond: 0.01, burst: 5 } });
    const creds = await ts.addClient('home-t');
    const signer = new TestClient(ts.url, creds, { sign: creds });
    await signer.login();
    const thief = new TestClient(ts.url, creds);
    thief.token = signer.token; // the stolen token, no secret
    const stolen: number[] = [];
    for (let i = 0; i < 8; i++) stolen.push((await thief.syncRequest()).status);
    expect(stolen.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(stolen.slice(-3)).toEqual([429, 429, 429]);
    for (let i = 0; i < 4; i++) expect((await signer.syncRequest()).status).toBe(200);
  });
});

describe('authentication reveals nothing, and refusals are visible', () => {
  it('answers an unknown client id exactly like a wrong secret, signed or not', async () => {
    const ts = await server({ rateLimit: { ratePerSecond: 1000, burst: 1000 } });
    const creds = await ts.addClient('home-id');
    const ask = async (clientId: string, sign: boolean): Promise<unknown> => {
      const opts = sign ? { sign: { client_id: clientId, client_secret: 'wrong-secret', home_id: '' } } : {};
      const res = await send(ts.url, '/api/v1/auth/token', { client_id: clientId, client_secret: 'wrong-secret' }, opts);
      return { status: res.status, body: res.json, signed: res.headers['x-inbetweenies-signature'] !== undefined };
    };
    for (const sign of [false, true]) expect(await ask('gw-does-not-exist', sign)).toEqual(await ask(creds.client_id, sign));
  });

  it('revokes the access token of the pair a refresh rotates', async () => {
    const ts = await server({});
    const c = new TestClient(ts.url, await ts.addClient('home-r'));
    await c.login();
    const old = c.token;
    const res = await send(ts.url, '/api/v1/auth/refresh', { refresh_token: c.refreshToken });
    expect(res.status).toBe(200);
    c.token = old;
    const refused = await c.syncRequest();
    expect(refused.status).toBe(401);
    expect(refused.json.code).toBe('UNAUTHORIZED');
    c.token = res.json.access_token;
    expect((await c.syncRequest()).status).toBe(200);
  });

  it('logs refusals at most once per code and reason per interval, with count, client id, address, capped input', async () => {
    const { logger, lines } = captureLog();
    let shift = 0; // the server's clock: moved past the interval below, whatever the machine's load
    const ts = await server({ hmac: { required: true }, log: { refusalIntervalSeconds: 10 }, rateLimit: { ratePerSecond: 1000, burst: 1000 } }, logger, () => Date.now() + shift);
    const creds = await ts.addClient('home-log');
    const c = new TestClient(ts.url, creds, { sign: creds });
    await c.login();
    const nonce = newNonce();
    await c.syncRequest({}, { nonce });
    for (let i = 0; i < 100; i++) await c.syncRequest({}, { nonce }); // replays
    for (let i = 0; i < 50; i++) await send(ts.url, '/api/v1/auth/token', { client_id: 'x', client_secret: 'y' }, { headers: { 'x-inbetweenies-client-id': 'C'.repeat(10_000), 'x-inbetweenies-timestamp': '1', 'x-inbetweenies-nonce': 'n'.repeat(16), 'x-inbetweenies-signature': 'v1=00' } });
    const refusals = (): Array<Record<string, unknown>> => lines.filter((l) => l.msg === 'request refused');
    const replays = refusals().filter((l) => l.reason === 'BAD_SIGNATURE/replayed');
    expect(replays).toHaveLength(1);
    expect(replays[0]).toMatchObject({ level: 40, code: 'BAD_SIGNATURE', client: creds.client_id, address: '127.0.0.1', endpoint: 'sync_request' });
    const stale = refusals().filter((l) => l.reason === 'BAD_SIGNATURE/stale');
    expect(stale).toHaveLength(1);
    expect(String(stale[0]?.client).length).toBeLessThanOrEqual(65);
    expect(JSON.stringify(lines).length).toBeLessThan(20_000); // no 10 KB header copied into any line
    shift = 11_000;
    await c.syncRequest({}, { nonce, signAt: Math.floor((Date.now() + shift) / 1000) });
    const again = refusals().filter((l) => l.reason === 'BAD_SIGNATURE/replayed');
    expect(again).toHaveLength(2);
    expect(again[1]?.count).toBe(100);
  });

  it('counts requests and refusals in Prometheus metrics on their own listener, with the process metrics', async () => {
    const ts = await server({ hmac: { required: true }, metrics: { enabled: true, port: 0 } });
    expect(ts.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const creds = await ts.addClient('home-m');
    const c = new TestClient(ts.url, creds, { sign: creds });
    await c.login();
    const nonce = newNonce();
    await c.syncRequest({}, { nonce });
    await c.syncRequest({}, { nonce });
    await send(ts.url, '/api/v1/sync/request', {}, { token: 'nope' });
    const res = await request(ts.metricsUrl ?? '');
    const text = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(text).toMatch(/inbetweenies_server_refusals_total\{code="BAD_SIGNATURE",reason="replayed"\} 1/);
    expect(text).toMatch(/inbetweenies_server_refusals_total\{code="UNAUTHORIZED",reason="unknown_token"\} 1/);
    expect(text).toMatch(/inbetweenies_server_requests_total\{endpoint="sync_request",status="200"\} 1/);
    expect(text).toMatch(/inbetweenies_server_requests_total\{endpoint="auth_token",status="200"\} 1/);
    expect(text).toContain('inbetweenies_server_process_resident_memory_bytes');
    expect(text).toContain('inbetweenies_server_body_memory_bytes 0');
    expect((await send(ts.url, '/metrics', undefined, { method: 'GET' })).status).toBe(404); // not on the public listener
  });
});

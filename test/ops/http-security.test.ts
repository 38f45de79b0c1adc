/**
 * The HTTP listener's rules (docs/security.md §The HTTP listener), against the real daemon in-process (listener on
 * port 0) and the built CLI: a DNS-rebinding Host is refused with a code; a listener off loopback without a token is
 * a configuration error at start; with a token every request needs it (the page's cookie reads, never POSTs); POST
 * floods and repeated full resyncs get 429 with Retry-After; the live stream is bounded.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/gateway-config.js';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startOpsGateway, type OpsGateway } from './helpers.js';
import { openSse, raw, type SseStream } from './http-client.js';

const TOKEN = 'a-test-token-0123456789abcdef';
const JSON_TYPE = { 'content-type': 'application/json' };

let gw: OpsGateway | undefined;
let server: TestServer | undefined;
const streams: SseStream[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await gw?.close();
  await server?.close();
  gw = server = undefined;
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const portOf = (url: string): string => new URL(url).port;

describe('Host header (DNS rebinding)', () => {
  it('answers loopback names and addresses; refuses any other name with 403 HOST_NOT_ALLOWED, on every route', async () => {
    gw = await startOpsGateway();
    const port = portOf(gw.url);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, `127.0.0.5:${port}`, 'localhost']) {
      expect((await raw(gw.url, '/status', { headers: { Host: host } })).status, host).toBe(200);
    }
    // A page of the attacker's whose name now resolves to 127.0.0.1 sends its own name.
    for (const [method, path] of [['GET', '/'], ['GET', '/status'], ['GET', '/events'], ['GET', '/metrics'], ['GET', '/api/devices'], ['POST', '/sync']] as const) {
      const r = await raw(gw.url, path, { method, headers: { Host: `rebind.attacker.example:${port}`, ...JSON_TYPE }, ...(method === 'POST' ? { body: '{"full":true}' } : {}) });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.json, `${method} ${path}`).toMatchObject({ type: 'error', code: 'HOST_NOT_ALLOWED' });
    }
    expect((await raw(gw.url, '/status', { headers: { Host: `127.0.0.1.attacker.example:${port}` } })).status).toBe(403);
    // No Host at all: Node's HTTP/1.1 parser answers 400 before any route (HTTP/1.0 reaches the guard: 403).
    expect((await raw(gw.url, '/status', { setHost: false })).status).toBe(400);
  });

  it('answers the names in http.allowedHosts', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, http: { ...c.http, allowedHosts: ['gateway.lan'] } }) });
    expect((await raw(gw.url, '/status', { headers: { Host: `gateway.lan:${portOf(gw.url)}` } })).status).toBe(200);
    expect((await raw(gw.url, '/status', { headers: { Host: `other.lan:${portOf(gw.url)}` } })).status).toBe(403);
  });
});

describe('a listener off loopback needs a token', () => {
  it('http.host 0.0.0.0 without http.token: a configuration error (run exits 2, check-config names it)', () => {
    assertBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'ib-http-token-'));
    dirs.push(dir);
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, 'http:\n  host: 0.0.0.0\n  port: 0\n');
    const env = { ...process.env, INBETWEENIES_HTTP_TOKEN: '' };
    const run = spawnSync(process.execPath, [CLI, 'run', '--config', file, '--data-dir', dir, '--mqtt-port', '0'], { encoding: 'utf8', timeout: 30_000, env });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/http\.token: required when http\.host is not a loopback address \(got "0\.0\.0\.0"\).*\(line 2, column 9\)/);
    const check = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8', timeout: 30_000, env });
    expect(check.status).toBe(1);
    expect(check.stderr).toContain('http.token');
    // With the token (here from the environment) the same file is valid; on loopback none is needed.
    expect(() => loadGatewayConfig({ file, env: { INBETWEENIES_HTTP_TOKEN: TOKEN } })).not.toThrow();
    expect(() => loadGatewayConfig({ env: {} })).not.toThrow();
    expect(() => loadGatewayConfig({ file, env: { INBETWEENIES_HTTP_TOKEN: 'short' } })).toThrow(/http\.token.*at least 16 characters/s);
  });

  it('bound to every interface with a token: every request needs it; the page cookie reads but never POSTs', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, http: { ...c.http, host: '0.0.0.0', token: TOKEN } }) });
    const url = gw.url.replace('0.0.0.0', '127.0.0.1');
    const none = await raw(url, '/status');
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await raw(url, '/', {})).status).toBe(401);
    expect((await raw(url, '/status', { headers: { Authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    expect((await raw(url, '/status', { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await raw(url, '/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await raw(url, '/?token=wrong')).status).toBe(401);

    // Opening the page once with ?token= sets a cookie and sends the browser to the page without it.
    const visit = await raw(url, `/?token=${TOKEN}`);
    expect(visit.status).toBe(303);
    expect(visit.headers.location).toBe('/');
    const setCookie = visit.headers['set-cookie']?.[0] ?? '';
    expect(setCookie).toMatch(/^inbetweenies_session=[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.split(';')[0] ?? '';
    expect((await raw(url, '/', { headers: { Cookie: cookie } })).status).toBe(200);
    expect((await raw(url, '/api/devices', { headers: { Cookie: cookie } })).status).toBe(200);
    const stream = await openSse(url, '/events', { Cookie: cookie });
    streams.push(stream);
    expect(stream.status).toBe(200);

    // A cross-site form or fetch carries the cookie at most: a POST needs the token itself.
    const csrf = await raw(url, '/jobs/maintenance', { method: 'POST', headers: { Cookie: cookie, ...JSON_TYPE }, body: '{}' });
    expect(csrf.status).toBe(401);
    expect(csrf.json).toMatchObject({ code: 'UNAUTHORIZED' });
    const form = await raw(url, '/jobs/maintenance', { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
    expect(form.status).toBe(415);
    const ok = await raw(url, '/jobs/maintenance', { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, ...JSON_TYPE }, body: '{}' });
    expect(ok.status).toBe(200);

    // The address the request came in on is a valid Host (a browser on the LAN types the Pi's address).
    const lan = Object.values(networkInterfaces()).flat().find((a) => a?.family === 'IPv4' && !a.internal)?.address;
    if (lan !== undefined) {
      const direct = await raw(`http://${lan}:${portOf(gw.url)}`, '/status', { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(direct.status).toBe(200);
    }
  });

  it('wrong tokens from one address are rate limited (429 with Retry-After)', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, http: { ...c.http, token: TOKEN } }) });
    const codes: number[] = [];
    for (let i = 0; i < 12; i += 1) codes.push((await raw(gw.url, '/status', { headers: { Authorization: `Bearer guess-${i}-0123456789abcdef` } })).status);
    expect(codes.slice(0, 10)).toEqual(Array(10).fill(401));
    const limited = await raw(gw.url, '/status', { headers: { Authorization: 'Bearer guess-x-0123456789abcdef' } });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  });
});

describe('POST rates', () => {
  it('a full resync at most once a minute; a POST flood gets 429 with Retry-After', async () => {
    server = await startTestServer();
    const creds = await server.addClient();
    gw = await startOpsGateway({ serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret });
    const full = () => raw(gw?.url ?? '', '/sync', { method: 'POST', headers: JSON_TYPE, body: '{"full":true}' });
    expect((await full()).status).toBe(200);
    const again = await full();
    expect(again.status).toBe(429);
    expect(again.json).toMatchObject({ type: 'error', code: 'RATE_LIMITED' });
    expect(Number(again.headers['retry-after'])).toBeGreaterThan(50);
    // Other POSTs: a small bucket (5, refilled 6 a minute; the full resync took one).
    const codes: number[] = [];
    for (let i = 0; i < 8; i += 1) codes.push((await raw(gw.url, '/sync', { method: 'POST', headers: JSON_TYPE, body: '{}' })).status);
    expect(codes.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(codes.slice(4)).toEqual([429, 429, 429, 429]);
    const limited = await raw(gw.url, '/jobs/maintenance', { method: 'POST', headers: JSON_TYPE, body: '{}' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await raw(gw.url, '/healthz')).status).toBe(200); // reads are not limited
  });
});

describe('the live stream (GET /events)', () => {
  it('text/event-stream: a snapshot first, then the devices ingest commits and the status; at most maxEventClients streams', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, http: { ...c.http, maxEventClients: 2 } }) });
    const a = await openSse(gw.url);
    streams.push(a);
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const snap = await a.next((e) => e.event === 'snapshot', 5000, 'the snapshot');
    expect(snap.data).toMatchObject({ status: { version: expect.any(String), sync: { label: 'offline', mode: 'unconfigured' }, devices: 0 }, devices: [], conflicts: [] });
    const client = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
    await client.publishAsync('devices/sensor-1/state', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
    const change = await a.next((e) => e.event === 'devices', 5000, 'a devices event');
    expect(change.data).toMatchObject({ full: false, devices: [{ id: 'sensor-1', state: { temperature: 21.5 }, pending: true }], removed: [] });
    await a.next((e) => e.event === 'status' && JSON.stringify(e.data).includes('"pending":1'), 5000, 'a status event with the pending change');
    await client.endAsync();

    const b = await openSse(gw.url);
    streams.push(b);
    expect(b.status).toBe(200);
    const third = await raw(gw.url, '/events');
    expect(third.status).toBe(503);
    expect(third.json).toMatchObject({ code: 'SERVER_BUSY' });
    expect(third.headers['retry-after']).toBe('10');
    b.close();
    await new Promise((r) => setTimeout(r, 200));
    const c = await openSse(gw.url); // a slot is free again
    streams.push(c);
    expect(c.status).toBe(200);
  });
});

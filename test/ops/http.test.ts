/**
 * The loopback listener: /healthz, Prometheus /metrics, GET /status, POST /sync and POST /jobs/<name>,
 * against the real daemon in-process, real MQTT clients and the real sync server on port 0.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { getJson, sample, startOpsGateway, type OpsGateway } from './helpers.js';

const P = 'inbetweenies_gateway_';
let gw: OpsGateway | undefined;
let gw2: OpsGateway | undefined;
let server: TestServer | undefined;
afterEach(async () => {
  await gw?.close();
  await gw2?.close();
  await server?.close();
  gw = gw2 = server = undefined;
});

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

describe('health, metrics and control over HTTP', () => {
  it('/healthz 200 and /metrics count messages in, states written, duplicates, drops by reason, pending, broker clients, RSS', async () => {
    gw = await startOpsGateway();
    const health = await getJson(`${gw.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', reasons: [], checks: { broker: { ok: true }, store: { ok: true } } });
    const client = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
    await client.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Lamp', type: 'light' }), { qos: 1 });
    await client.publishAsync('devices/lamp-1/state', JSON.stringify({ on: true }), { qos: 1 });
    await client.publishAsync('devices/lamp-1/state', JSON.stringify({ on: true }), { qos: 1 }); // identical: a duplicate
    await client.publishAsync('devices/lamp-1/state', 'not json', { qos: 1 });
    const text = await scrape(gw.url);
    expect(sample(text, `${P}mqtt_messages_in_total`)).toBeGreaterThanOrEqual(4);
    expect(sample(text, `${P}states_written_total`)).toBeGreaterThanOrEqual(2);
    expect(sample(text, `${P}duplicates_skipped_total`)).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(new RegExp(`^${P}inputs_dropped_total\\{reason="[a-z_]+"\\} 1$`, 'm'));
    expect(sample(text, `${P}pending_changes`)).toBeGreaterThanOrEqual(1);
    expect(sample(text, `${P}oldest_pending_age_seconds`)).toBeGreaterThanOrEqual(0);
    expect(sample(text, `${P}broker_clients`)).toBe(1);
    expect(sample(text, `${P}resident_memory_bytes`)).toBeGreaterThan(10_000_000);
    expect(sample(text, `${P}healthy`)).toBe(1);
    expect(sample(text, `${P}sync_mode{mode="unconfigured"}`)).toBe(1);
    for (const name of ['sync_cycles_total', 'sync_conflicts_total', 'sync_bytes_sent_total', 'sync_bytes_received_total', 'group_commits_total']) {
      expect(text).toContain(`# TYPE ${P}${name} counter`);
    }
    expect(text).toContain(`# TYPE ${P}sync_cycle_duration_seconds histogram`);
    await client.endAsync();
    const status = await getJson(`${gw.url}/status`);
    expect(status.body).toMatchObject({ source: 'daemon', devices: 1, syncConfigured: false, health: { healthy: true } });
  });

  it('sync metrics, POST /sync and a full reconcile against the real server; two daemons keep separate registries', async () => {
    server = await startTestServer();
    const creds = await server.addClient();
    const opts = { serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret };
    gw = await startOpsGateway(opts);
    gw2 = await startOpsGateway(opts);
    const client = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
    await client.publishAsync('devices/plug-1/state', JSON.stringify({ on: false }), { qos: 1 });
    await client.endAsync();
    const sync = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(sync.status).toBe(200);
    expect(sync.body).toMatchObject({ fullResync: false });
    const full = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"full":true}' });
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({ fullResync: true });
    const text = await scrape(gw.url);
    expect(sample(text, `${P}sync_cycles_total`)).toBeGreaterThanOrEqual(2);
    expect(sample(text, `${P}sync_full_reconciles_total`)).toBe(1);
    expect(sample(text, `${P}sync_cycle_duration_seconds_count{result="ok"}`)).toBeGreaterThanOrEqual(2);
    expect(sample(text, `${P}sync_bytes_sent_total`)).toBeGreaterThan(0);
    expect(sample(text, `${P}sync_bytes_received_total`)).toBeGreaterThan(0);
    expect(sample(text, `${P}sync_changes_pushed_total`)).toBeGreaterThanOrEqual(1);
    expect(sample(text, `${P}sync_mode{mode="online"}`)).toBe(1);
    const other = await scrape(gw2.url);
    expect(sample(other, `${P}sync_full_reconciles_total`)).toBe(0);
  });

  it('/healthz turns 503 with a JSON reason once sync has failed past the threshold', async () => {
    server = await startTestServer();
    const creds = await server.addClient();
    const url = server.url;
    await server.close();
    server = undefined;
    gw = await startOpsGateway({
      serverUrl: url,
      clientId: creds.client_id,
      clientSecret: creds.client_secret,
      tune: (c) => ({ ...c, health: { ...c.health, syncFailingAfterSeconds: 1 } }),
    });
    const sync = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(sync.status).toBe(502);
    expect(sync.body).toMatchObject({ type: 'error', code: 'TRANSPORT' });
    await new Promise((r) => setTimeout(r, 1300));
    const health = await getJson(`${gw.url}/healthz`);
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'unhealthy', checks: { sync: { ok: false }, store: { ok: true } } });
    expect(JSON.stringify(health.body)).toMatch(/sync: (offline|backoff) for \d+ s/);
    const text = await scrape(gw.url);
    expect(sample(text, `${P}healthy`)).toBe(0);
    expect(sample(text, `${P}sync_failures_total{code="TRANSPORT"}`)).toBeGreaterThanOrEqual(1);
  });

  it('GET /healthz has no side effects: asking twice does not clear the event-loop lag the watchdog tick will read', async () => {
    gw = await startOpsGateway({ tune: (c) => ({ ...c, health: { ...c.health, intervalMs: 60_000, maxEventLoopLagMs: 100 } }) });
    await new Promise((r) => setTimeout(r, 100)); // the delay histogram has sampled since the start's tick
    const until = Date.now() + 400;
    while (Date.now() < until) {
      // block the event loop (the daemon runs in this process): a 400 ms lag
    }
    const first = await getJson(`${gw.url}/healthz`);
    const second = await getJson(`${gw.url}/healthz`);
    expect(first.status).toBe(503);
    expect(second.status).toBe(503); // the first read did not reset the measurement
    expect(JSON.stringify(second.body)).toMatch(/event loop lag \d+ ms > 100 ms/);
  });

  it('answers bad requests with precise 4xx JSON errors', async () => {
    gw = await startOpsGateway();
    const nf = await getJson(`${gw.url}/nope`);
    expect(nf.status).toBe(404);
    expect(nf.body).toMatchObject({ type: 'error', code: 'NOT_FOUND' });
    const m = await getJson(`${gw.url}/healthz`, { method: 'POST' });
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET');
    const form = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(form.status).toBe(415);
    const bad = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"full":"yes"}' });
    expect(bad.status).toBe(400);
    const junk = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(junk.status).toBe(400);
    const unconfigured = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(unconfigured.status).toBe(409);
    expect(JSON.stringify(unconfigured.body)).toContain('sync is not configured');
    const job = await getJson(`${gw.url}/jobs/nope`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    expect(job.status).toBe(404);
    // a body over the 4 KiB cap: refused unread (util/http-body.ts), the connection closed
    const big = await getJson(`${gw.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ full: false, pad: 'x'.repeat(10_000) }) });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ type: 'error', code: 'PAYLOAD_TOO_LARGE' });
    expect((await getJson(`${gw.url}/healthz`)).status).toBe(200); // still serving
  });
});

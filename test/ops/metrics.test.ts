/**
 * Metrics a Grafana user expects, scraped from the real daemon (in-process, listener on port 0): every declared
 * counter has a sample from the first scrape, prom-client's process_* and nodejs_* metrics, build_info with the
 * version, devices and messages per adapter; and the version in GET /status and /healthz.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/gateway.js';
import { getJson, sample, startOpsGateway, type OpsGateway } from './helpers.js';

const P = 'inbetweenies_gateway_';
const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };

let gw: OpsGateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

const scrape = async (url: string): Promise<string> => (await fetch(`${url}/metrics`)).text();

/** Names declared with `# TYPE <name> counter` that have no sample line. */
function countersWithoutSamples(text: string): string[] {
  const counters = [...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1] ?? '');
  const lines = text.split('\n').filter((l) => !l.startsWith('#'));
  return counters.filter((name) => !lines.some((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`)));
}

describe('metrics from the first scrape', () => {
  it('every declared counter has a sample at once; sync failures, drops and corrupt rows by their known labels at 0', async () => {
    gw = await startOpsGateway({ serverUrl: 'http://127.0.0.1:1', clientId: 'gw-none', clientSecret: 'none-secret' });
    const text = await scrape(gw.url);
    const counters = [...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]);
    expect(counters.length).toBeGreaterThan(20);
    expect(countersWithoutSamples(text)).toEqual([]);
    expect(text).toMatch(new RegExp(`^${P}sync_failures_total\\{code="TRANSPORT"\\} \\d+$`, 'm'));
    expect(sample(text, `${P}inputs_dropped_total{reason="invalid_json"}`)).toBe(0);
    expect(sample(text, `${P}store_corrupt_rows_total{table="entities"}`)).toBe(0);
    expect(sample(text, `${P}sync_cycle_duration_seconds_count{result="error"}`)).toBeGreaterThanOrEqual(0);
  });

  it('process_* and nodejs_* metrics, build_info with the version and Node, version in /status and /healthz', async () => {
    gw = await startOpsGateway();
    const text = await scrape(gw.url);
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info']) {
      expect(text, name).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'));
    }
    expect(sample(text, `${P}build_info{version="${version}",node="${process.version}"}`)).toBe(1);
    expect((await getJson(`${gw.url}/status`)).body).toMatchObject({ version });
    expect((await getJson(`${gw.url}/healthz`)).body).toMatchObject({ status: 'ok', version });
  });

  it('devices and messages per adapter', async () => {
    gw = await startOpsGateway();
    const before = await scrape(gw.url);
    for (const adapter of ['native', 'zigbee2mqtt', 'tasmota', 'shelly', 'homeassistant']) {
      expect(sample(before, `${P}devices{adapter="${adapter}"}`), adapter).toBe(0);
      expect(sample(before, `${P}messages_total{adapter="${adapter}"}`), adapter).toBe(0);
    }
    const client = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
    await client.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Lamp', type: 'light' }), { qos: 1 });
    await client.publishAsync('devices/lamp-1/state', 'not json', { qos: 1 }); // refused, still the native adapter's message
    await client.publishAsync('zigbee2mqtt/bridge/devices', JSON.stringify([{ friendly_name: 'hall/motion', definition: { vendor: 'IKEA', model: 'E1525', exposes: [] } }]), { qos: 1 });
    await client.publishAsync('zigbee2mqtt/hall/motion', JSON.stringify({ occupancy: true }), { qos: 1 });
    await client.publishAsync('unrelated/topic', 'x', { qos: 1 });
    await client.endAsync();
    const gateway = gw;
    await waitFor(() => (gateway.daemon.store?.entities.deviceCount() ?? 0) >= 2, 5000, 'both devices stored');
    const after = await scrape(gw.url);
    expect(sample(after, `${P}devices{adapter="native"}`)).toBe(1);
    expect(sample(after, `${P}devices{adapter="zigbee2mqtt"}`)).toBe(1);
    expect(sample(after, `${P}devices{adapter="tasmota"}`)).toBe(0);
    expect(sample(after, `${P}messages_total{adapter="native"}`)).toBe(2);
    expect(sample(after, `${P}messages_total{adapter="zigbee2mqtt"}`)).toBe(2);
    expect(sample(after, `${P}mqtt_messages_in_total`)).toBe(5);
  });
});

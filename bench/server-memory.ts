/**
 * Memory of the sync server under decompression and JSON bombs (`npm run bench:server-memory`). The built server
 * (`node dist/cli.js server`, HMAC optional — the most exposed setting) runs as a child process; for each endpoint a
 * fresh child gets 3 rounds of 16 bombs in parallel while another client of another home keeps syncing. Figures per
 * endpoint: peak RSS of the child (/proc VmHWM), its RSS before the bombs, the statuses the bombs got, and the worst
 * latency and the failures of the other client meanwhile. Baseline: the same child idle, measured in the same run.
 * Also the size of a realistic push of 1000 changes (which the per-endpoint caps must leave room for).
 * Never fails on its figures.
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { newNonce, signRequest } from '../src/protocol/index.js';
import { addClientCli, spawnServer, type ServerProcess } from '../test/helpers/server-process.js';
import { figure, sleep, tempDir } from './lib.js';

const PARALLEL = 16;
/** Node flags of the server child (BENCH_NODE_FLAGS, space-separated), e.g. those of systemd/inbetweenies-server.service. */
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
const ROUNDS = 3;
const BOMB_INFLATED = 16 * 1024 * 1024 - 64;

interface Creds {
  readonly client_id: string;
  readonly client_secret: string;
}

interface Shot {
  readonly path: string;
  readonly body: Buffer;
  readonly gzip: boolean;
  readonly token?: string;
  readonly sign?: Creds;
}

/** `{"type":…,"client_id":…,"changes":[{},{},…]}` (or any key) inflating to about `size` bytes of empty objects. */
function objectFlood(prefix: string, size: number): Buffer {
  const head = Buffer.from(`${prefix}[`);
  const count = Math.floor((size - head.length - 4) / 3);
  const body = Buffer.alloc(head.length + count * 3 + 3);
  head.copy(body, 0);
  let at = head.length;
  for (let i = 0; i < count; i++) {
    body[at++] = 0x7b; // {
    body[at++] = 0x7d; // }
    body[at++] = 0x2c; // ,
  }
  body.write('{}]', at);
  return prefix.startsWith('{') ? Buffer.concat([body, Buffer.from('}')]) : body;
}

let wideRound = 0;
function widePush(clientId: string): Buffer {
  const state: Record<string, number> = {};
  for (let i = 0; i < 118; i++) state[`k${i}`] = i;
  const at = new Date().toISOString();
  wideRound += 1;
  const changes = Array.from({ length: 1000 }, (_, i) => ({
    entity_type: 'entity_state', entity_id: `wide-${i}`, operation: 'update', updated_at: at,
    data: { device_id: `wide-${i}`, state }, client_sync_id: `wide-${wideRound}-${i}`,
  }));
  return Buffer.from(JSON.stringify({ type: 'sync_push', client_id: clientId, changes }));
}

async function fire(url: string, shot: Shot): Promise<string> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (shot.gzip) headers['content-encoding'] = 'gzip';
  if (shot.token) headers.authorization = `Bearer ${shot.token}`;
  if (shot.sign) {
    Object.assign(headers, signRequest({
      secret: shot.sign.client_secret, method: 'POST', path: shot.path, clientId: shot.sign.client_id, body: shot.body,
      timestampSeconds: Math.floor(Date.now() / 1000), nonce: newNonce(),
    }));
  }
  try {
    const res = await request(`${url}${shot.path}`, { method: 'POST', headers, body: shot.body });
    const text = await res.body.text();
    const code = /"code":"([A-Z_]+)"/.exec(text)?.[1] ?? 'ok';
    return `${res.statusCode} ${code}`;
  } catch (err) {
    return `reset (${(err as { code?: string }).code ?? (err as Error).message})`;
  }
}

async function login(url: string, creds: Creds): Promise<string> {
  const body = Buffer.from(JSON.stringify({ client_id: creds.client_id, client_secret: creds.client_secret }));
  const res = await request(`${url}/api/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = (await res.body.json()) as { access_token?: string };
  if (!json.access_token) throw new Error(`login failed: ${JSON.stringify(json)}`);
  return json.access_token;
}

/** Another home's client syncing every 100 ms: worst latency and failures while the bombs fly. */
function otherClient(url: string, creds: Creds, token: string): { stop: () => Promise<{ worstMs: number; failures: number; calls: number }> } {
  let running = true;
  let worstMs = 0;
  let failures = 0;
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const status = await fire(url, {
        path: '/api/v1/sync/request',
        body: Buffer.from(JSON.stringify({ type: 'sync_request', client_id: creds.client_id, last_sync: null })),
        gzip: false, token, sign: creds,
      });
      calls++;
      worstMs = Math.max(worstMs, performance.now() - started);
      if (!status.startsWith('200')) failures++;
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { worstMs, failures, calls };
    },
  };
}

interface Scenario {
  readonly name: string;
  readonly shot: (ctx: { token: string; creds: Creds }) => Shot;
}

function scenarios(): Scenario[] {
  const gz = (b: Buffer): Buffer => gzipSync(b, { level: 9 });
  const flood = gz(objectFlood('[', BOMB_INFLATED));
  const pushFlood = (id: string): Buffer => gz(objectFlood(`{"type":"sync_push","client_id":"${id}","changes":`, BOMB_INFLATED));
  const rawPush = (id: string): Buffer => objectFlood(`{"type":"sync_push","client_id":"${id}","changes":`, 4 * 1024 * 1024 - 64);
  return [
    { name: 'auth_token', shot: () => ({ path: '/api/v1/auth/token', body: flood, gzip: true }) },
    { name: 'auth_refresh', shot: () => ({ path: '/api/v1/auth/refresh', body: flood, gzip: true }) },
    { name: 'sync_request', shot: ({ token, creds }) => ({ path: '/api/v1/sync/request', body: flood, gzip: true, token, sign: creds }) },
    { name: 'sync_ack', shot: ({ token, creds }) => ({ path: '/api/v1/sync/ack', body: flood, gzip: true, token, sign: creds }) },
    { name: 'sync_push_gzip', shot: ({ token, creds }) => ({ path: '/api/v1/sync/push', body: pushFlood(creds.client_id), gzip: true, token, sign: creds }) },
    { name: 'sync_push_raw_4mib', shot: ({ token, creds }) => ({ path: '/api/v1/sync/push', body: rawPush(creds.client_id), gzip: false, token, sign: creds }) },
    // The worst push the limits let through: 1000 entity states of 118 attributes, ~250 values a change (the cap is
    // 256 a change on average), all parsed, validated and written.
    { name: 'sync_push_max_values', shot: ({ token, creds }) => ({ path: '/api/v1/sync/push', body: gz(widePush(creds.client_id)), gzip: true, token, sign: creds }) },
  ];
}

async function runScenario(scenario: Scenario | undefined): Promise<void> {
  const dataDir = tempDir('ib-bench-mem-');
  const attacker = addClientCli(dataDir, 'home-b');
  const victim = addClientCli(dataDir, 'home-a');
  let server: ServerProcess | undefined;
  try {
    server = await spawnServer({ dataDir, configYaml: 'log: {level: info}\n', nodeFlags: NODE_FLAGS });
    const token = await login(server.url, attacker);
    const victimToken = await login(server.url, victim);
    await sleep(300);
    const before = server.memory();
    const name = scenario?.name ?? 'idle';
    if (scenario === undefined) {
      await sleep(1000);
      figure(`baseline_idle_rss_peak`, server.memory().hwmMb, 'MB', 1);
      return;
    }
    const other = otherClient(server.url, victim, victimToken);
    const shot = scenario.shot({ token, creds: attacker });
    const statuses = new Map<string, number>();
    const started = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      const results = await Promise.all(Array.from({ length: PARALLEL }, () => fire(server!.url, shot)));
      for (const r of results) statuses.set(r, (statuses.get(r) ?? 0) + 1);
    }
    const seconds = (performance.now() - started) / 1000;
    const victimStats = await other.stop();
    const after = server.memory();
    figure(`${name}_rss_before`, before.rssMb, 'MB', 1);
    figure(`${name}_rss_peak`, after.hwmMb, 'MB', 1);
    figure(`${name}_bomb_bytes`, shot.body.length, 'bytes');
    figure(`${name}_seconds`, seconds, 's');
    figure(`${name}_other_client_worst_latency`, victimStats.worstMs, 'ms', 0);
    figure(`${name}_other_client_failures`, victimStats.failures, `of ${victimStats.calls}`);
    process.stdout.write(`${name}_statuses: ${[...statuses].map(([s, n]) => `${n}× ${s}`).join(', ')}\n`);
  } finally {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(`${dataDir}.yaml`, { force: true });
  }
}

/** Bytes of a sync_push of 1000 entity states as the gateway sends them (zigbee2mqtt-like light, and a 40-attribute one). */
function realisticPushSizes(): void {
  const at = '2026-11-25T10:51:19.665000Z';
  const light = { state: 'ON', brightness: 254, color_temp: 370, color_mode: 'color_temp', color: { x: 0.4573, y: 0.41 }, linkquality: 116, update: { state: 'idle', installed_version: 587765297, latest_version: 587765297 }, update_available: false, last_seen: at };
  const big: Record<string, unknown> = {};
  for (let i = 0; i < 40; i++) big[`attribute_number_${i}`] = i % 3 === 0 ? `value text ${i} with some words` : i * 1.5;
  for (const [name, state] of [['z2m_light', light], ['wide_40_attributes', big]] as const) {
    const changes = Array.from({ length: 1000 }, (_, i) => ({
      entity_type: 'entity_state', entity_id: `z2m:living_room_light_${i}`, operation: 'update',
      data: { device_id: `z2m:living_room_light_${i}`, state, id: `z2m:living_room_light_${i}` },
      updated_at: at, client_sync_id: `c-0123456789abcdef-${i}`,
    }));
    const text = Buffer.from(JSON.stringify({ type: 'sync_push', client_id: 'gw-4cd4055cffd6dd127526fe2a', changes }));
    figure(`push_1000_${name}_bytes`, text.length, 'bytes');
    figure(`push_1000_${name}_gzip_bytes`, gzipSync(text).length, 'bytes');
  }
}

async function main(): Promise<void> {
  process.stdout.write(`# server memory under bombs: ${PARALLEL} parallel × ${ROUNDS} rounds per endpoint; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  realisticPushSizes();
  await runScenario(undefined);
  const only = process.argv[2];
  for (const scenario of scenarios()) {
    if (only !== undefined && scenario.name !== only) continue;
    await runScenario(scenario);
  }
}

await main();

/**
 * Sync figures of the gateway, against the project's server in the same process on loopback,
 * HMAC and gzip on: a typical-home cycle (30 devices, 20 changed states, all five phases), an idle poll, and draining
 * a backlog of 10,000 changed entities. Baselines from the same run: a bare undici round trip to the same server,
 * and the same 10,000 changes pushed by a bare transport with no gateway store.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { silentLogger } from '../src/log.js';
import { formatTimestamp, SyncResultSchema, TokenResponseSchema } from '../src/protocol/index.js';
import { createSyncServer, parseServerConfig, type SyncServer } from '../src/server/index.js';
import { APPLY_LOCAL_UPDATES, type LocalUpdate } from '../src/ingest/local-writes.js';
import { openStore, type GatewayStore } from '../src/store/index.js';
import { SyncClient, SyncTransport } from '../src/sync/index.js';
import { figure, median, tempDir } from './lib.js';

export interface Rig {
  readonly server: SyncServer;
  readonly url: string;
  readonly store: GatewayStore;
  readonly client: SyncClient;
  readonly dir: string;
  readonly creds: { client_id: string; client_secret: string };
}

export async function rig(name: string, clientOptions: { readonly seedOnly?: boolean } = {}): Promise<Rig> {
  const dir = tempDir(`ib-bench-${name}-`);
  const server = createSyncServer({
    config: parseServerConfig({ host: '127.0.0.1', port: 0, dataDir: join(dir, 'server'), log: { level: 'silent' }, hmac: { required: true }, rateLimit: { ratePerSecond: 100_000, burst: 100_000 } }),
    logger: silentLogger(),
  });
  const { url } = await server.listen();
  const creds = await server.addClient(`home-${name}`);
  const store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
  const client = new SyncClient({ store, logger: silentLogger(), serverUrl: url, clientId: creds.client_id, clientSecret: creds.client_secret, hmac: true, ...clientOptions });
  return { server, url, store, client, dir, creds };
}

export async function teardown(r: Rig): Promise<void> {
  await r.client.close();
  await r.store.close();
  await r.server.close();
  rmSync(r.dir, { recursive: true, force: true });
}

async function writeStates(r: Rig, updates: LocalUpdate[]): Promise<void> {
  await r.store.durable(APPLY_LOCAL_UPDATES, { updates, nowMicros: r.client.clock.nowMicros(), nowMs: Date.now() });
}

function homeUpdates(devices: number, round: number, changed: number): LocalUpdate[] {
  return Array.from({ length: changed }, (_, i) => ({
    kind: 'state' as const,
    deviceId: `device-${(round * 7 + i) % devices}`,
    attributes: { state: round % 2 ? 'ON' : 'OFF', brightness: (round * 13 + i) % 255, power: Math.round(Math.random() * 1000) / 10 },
  }));
}

export async function runSyncBench(cycles = 200): Promise<void> {
  const r = await rig('cycle');
  try {
    // The home: 30 devices with meta and a first state, synced once.
    const metas: LocalUpdate[] = Array.from({ length: 30 }, (_, i) => ({ kind: 'meta', deviceId: `device-${i}`, name: `Device ${i}`, type: 'light', room: `Room ${i % 6}` }));
    await writeStates(r, [...metas, ...homeUpdates(30, 0, 30)]);
    await r.client.runCycle();
    await r.client.runCycle();

    const latencies: number[] = [];
    const bytes: number[] = [];
    for (let round = 1; round <= cycles; round += 1) {
      await writeStates(r, homeUpdates(30, round, 20));
      const report = await r.client.runCycle();
      latencies.push(report.durationMs);
      bytes.push(report.bytesSent + report.bytesReceived);
    }
    const idleBytes: number[] = [];
    const idleLatency: number[] = [];
    for (let i = 0; i < 50; i += 1) {
      const report = await r.client.runCycle();
      idleBytes.push(report.bytesSent + report.bytesReceived);
      idleLatency.push(report.durationMs);
    }
    // Baseline: a bare undici round trip (GET /api/v1/health) to the same server.
    const bare: number[] = [];
    for (let i = 0; i < cycles; i += 1) {
      const t = performance.now();
      const res = await request(`${r.url}/api/v1/health`);
      await res.body.text();
      bare.push(performance.now() - t);
    }
    figure('sync_cycle_typical_home_median', median(latencies), 'ms', 3);
    figure('sync_cycle_typical_home_bytes_median', median(bytes), 'bytes', 0);
    figure('sync_idle_poll_bytes_median', median(idleBytes), 'bytes', 0);
    figure('sync_idle_poll_median', median(idleLatency), 'ms', 3);
    figure('baseline_bare_http_roundtrip_median', median(bare), 'ms', 3);
    figure('sync_cycle_vs_bare_roundtrip_ratio', median(latencies) / median(bare), 'x');
  } finally {
    await teardown(r);
  }
}

export async function runBacklogBench(entities = 10_000): Promise<void> {
  const r = await rig('backlog');
  try {
    const updates: LocalUpdate[] = Array.from({ length: entities }, (_, i) => ({ kind: 'state', deviceId: `dev-${i}`, attributes: { value: i, on: i % 2 === 0 } }));
    await writeStates(r, updates);
    const t = performance.now();
    const report = await r.client.runCycle();
    const seconds = (performance.now() - t) / 1000;
    if (report.pushed !== entities) throw new Error(`backlog bench: pushed ${report.pushed} of ${entities}`);

    // Baseline: the same changes pushed by a bare transport (no store reads or result writes) to a fresh home.
    const creds = await r.server.addClient('home-backlog-baseline');
    const transport = new SyncTransport({ serverUrl: r.url, clientId: creds.client_id, clientSecret: creds.client_secret, logger: silentLogger() });
    const token = await transport.call({ method: 'POST', path: '/api/v1/auth/token', body: { client_id: creds.client_id, client_secret: creds.client_secret }, schema: TokenResponseSchema });
    const now = formatTimestamp(Date.now() * 1000);
    const t2 = performance.now();
    for (let start = 0; start < entities; start += 1000) {
      const changes = Array.from({ length: Math.min(1000, entities - start) }, (_, k) => ({
        entity_type: 'entity_state', entity_id: `dev-${start + k}`, operation: 'create', updated_at: now,
        data: { device_id: `dev-${start + k}`, state: { value: start + k, on: true } }, client_sync_id: `base-${start + k}`,
      }));
      await transport.call({ method: 'POST', path: '/api/v1/sync/push', body: { type: 'sync_push', client_id: creds.client_id, changes }, schema: SyncResultSchema, bearer: token.value.access_token });
    }
    const baseline = (performance.now() - t2) / 1000;
    await transport.close();
    figure('backlog_drain_10000_entities', seconds, 's', 3);
    figure('backlog_drain_rate', entities / seconds, 'changes/s', 0);
    figure('baseline_bare_push_10000', baseline, 's', 3);
    figure('backlog_drain_vs_bare_push_ratio', seconds / baseline, 'x');
  } finally {
    await teardown(r);
  }
}

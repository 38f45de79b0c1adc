/**
 * Bytes on the wire with and without the extensions (docs/protocol.md §Attribute-level state, §Convergence digest),
 * against the project's server in the same process on loopback, HMAC and gzip on. The same home, the same changes,
 * twice in one run: a gateway speaking only the seed (whole states, no caps: the baseline) and one with the
 * extensions (changed attributes only, partial deltas, a digest with every delta). The home: 30 lights with a
 * zigbee2mqtt-like state of 10 attributes; each cycle 20 of them report 1–2 changed attributes. Also the cost of the
 * digest: the gateway's check per sync, and the server's push with digest maintenance against a plain run.
 */
import { rmSync } from 'node:fs';
import { APPLY_LOCAL_UPDATES, type LocalUpdate } from '../src/ingest/local-writes.js';
import { PushApplier, ServerStore } from '../src/server/store/index.js';
import { rig as sharedRig, teardown, type Rig } from './gateway-sync.js';
import { figure, median, tempDir } from './lib.js';

async function rig(name: string, seedOnly: boolean): Promise<Rig> {
  return sharedRig(`bytes-${name}`, { seedOnly });
}

function fullState(i: number): Record<string, unknown> {
  return { state: 'ON', brightness: 128, color_temp: 300, color_mode: 'color_temp', color: { x: 0.31, y: 0.32 }, linkquality: 120, update_available: false, power_on_behavior: 'previous', effect: null, do_not_disturb: false, id: i };
}

function roundUpdates(round: number): LocalUpdate[] {
  return Array.from({ length: 20 }, (_, k) => {
    const device = (round * 7 + k) % 30;
    const attributes: Record<string, unknown> = { brightness: (round * 13 + k) % 255 };
    if (k % 2 === 0) attributes.linkquality = (round * 3 + k) % 255;
    return { kind: 'state' as const, deviceId: `light-${device}`, attributes };
  });
}

async function write(r: Rig, updates: LocalUpdate[]): Promise<void> {
  await r.store.durable(APPLY_LOCAL_UPDATES, { updates, nowMicros: r.client.clock.nowMicros(), nowMs: Date.now() });
}

async function measure(r: Rig, cycles: number): Promise<{ cycle: number; idle: number; checkMs: number }> {
  const metas: LocalUpdate[] = Array.from({ length: 30 }, (_, i) => ({ kind: 'meta', deviceId: `light-${i}`, name: `Light ${i}`, type: 'light', room: `Room ${i % 6}` }));
  await write(r, [...metas, ...Array.from({ length: 30 }, (_, i) => ({ kind: 'state' as const, deviceId: `light-${i}`, attributes: fullState(i) }))]);
  await r.client.runCycle();
  await r.client.runCycle();
  const bytes: number[] = [];
  for (let round = 1; round <= cycles; round += 1) {
    await write(r, roundUpdates(round));
    const report = await r.client.runCycle();
    bytes.push(report.bytesSent + report.bytesReceived);
  }
  const idle: number[] = [];
  const checks: number[] = [];
  for (let i = 0; i < 50; i += 1) {
    const report = await r.client.runCycle();
    idle.push(report.bytesSent + report.bytesReceived);
    checks.push(r.client.convergence.status.lastCheckMs);
  }
  return { cycle: median(bytes), idle: median(idle), checkMs: median(checks) };
}

export async function runBytesBench(cycles = 100): Promise<void> {
  const seed = await rig('seed', true);
  const ext = await rig('ext', false);
  try {
    const before = await measure(seed, cycles);
    const after = await measure(ext, cycles);
    figure('baseline_seed_typical_home_cycle_bytes_median', before.cycle, 'bytes', 0);
    figure('extensions_typical_home_cycle_bytes_median', after.cycle, 'bytes', 0);
    figure('typical_home_cycle_bytes_ratio', after.cycle / before.cycle, 'x');
    figure('baseline_seed_idle_poll_bytes_median', before.idle, 'bytes', 0);
    figure('extensions_idle_poll_bytes_median', after.idle, 'bytes', 0);
    figure('idle_poll_bytes_ratio', after.idle / before.idle, 'x');
    figure('gateway_digest_check_per_sync_median_30_devices', after.checkMs, 'ms', 3);
    const entities = ext.store.entities.all().length;
    figure('gateway_digest_check_entities', entities, 'entities', 0);
    const builderStart = performance.now();
    const many = Array.from({ length: 5000 }, (_, i) => ({ entityType: 'entity_state' as const, entityId: `e-${i}`, data: { device_id: `e-${i}`, state: fullState(i) }, updatedAt: 0, syncId: 's', deleted: false }));
    const { compareDigest } = await import('../src/sync/digest-check.js');
    for (let i = 0; i < 5; i += 1) compareDigest({ digest: '0000000000000000', entities: many, dirtyKeys: new Set() });
    figure('gateway_digest_check_5000_entities_mean', (performance.now() - builderStart) / 5, 'ms', 2);
  } finally {
    await teardown(seed);
    await teardown(ext);
  }
}

/**
 * The server's side of the cost: the same 1000-state pushes applied by the store's push applier with the sync
 * history and digest maintenance (as the server runs) and without them (the baseline), in one run, one file each.
 */
export function runServerDigestCost(pushes = 20): void {
  const time = (withExtensions: boolean): number => {
    const dir = tempDir(`ib-bench-digest-${withExtensions ? 'on' : 'off'}-`);
    const store = new ServerStore({ dataDir: dir, clock: Date.now });
    const applier = withExtensions ? store.push : new PushApplier({ db: store.db, sequencer: store.sequencer, clock: Date.now });
    const samples: number[] = [];
    for (let p = 0; p < pushes; p += 1) {
      const at = new Date(Date.now() - (pushes - p) * 10_000).toISOString();
      const changes = Array.from({ length: 1000 }, (_, i) => ({
        entity_type: 'entity_state', entity_id: `light-${i}`, operation: 'update' as const, updated_at: at, client_sync_id: `c-${p}-${i}`,
        data: { device_id: `light-${i}`, state: { ...fullState(i), brightness: (p * 7 + i) % 255 } },
      }));
      const t = performance.now();
      applier.apply({ homeId: 'home-bench', clientId: 'gw-bench', clampUs: Date.now() * 1000 + 5_000_000 }, changes);
      samples.push(performance.now() - t);
    }
    store.close();
    rmSync(dir, { recursive: true, force: true });
    return median(samples.slice(1)); // the first push creates the rows
  };
  time(true); // warm-up (JIT, page cache), then alternate so load drifts hit both alike
  const offs = [time(false), time(false)];
  const ons = [time(true), time(true)];
  const off = Math.min(...offs);
  const on = Math.min(...ons);
  figure('baseline_server_push_1000_states_without_history_digest_median', off, 'ms', 2);
  figure('server_push_1000_states_with_history_digest_median', on, 'ms', 2);
  figure('server_history_digest_cost_ratio', on / off, 'x');
}

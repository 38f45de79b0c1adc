/**
 * The rules live sync adds to the sync client, on a real store file: the revised downlink (a pulled version that
 * meets an unpushed local change reaches the device only if the push result says it won), push settlements (a delta
 * computed before a push never undoes its result), and the clock sample of a held answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { formatTimestamp, type WireChange } from '../../src/protocol/index.js';
import { openStore, type GatewayStore } from '../../src/store/index.js';
import { APPLY_LOCAL_UPDATES } from '../../src/ingest/local-writes.js';
import { ServerClock } from '../../src/sync/clock.js';
import { APPLY_DELTA_PAGE } from '../../src/sync/delta-apply.js';
import { liveTimeoutMs, unheldRoundTrip } from '../../src/sync/live.js';
import { checkChanges } from '../../src/sync/pull.js';
import { APPLY_PUSH_RESULT, type PushDecision } from '../../src/sync/push-apply.js';
import { PushSettlements } from '../../src/sync/settlements.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function openTemp(): GatewayStore {
  const dir = mkdtempSync(join(tmpdir(), 'ib-live-rules-'));
  const store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
  cleanups.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

const T0 = Date.UTC(2026, 0, 1) * 1000;

function remote(state: object, syncId: string, atMicros: number): WireChange {
  return {
    entity_type: 'entity_state',
    entity_id: 'lamp',
    operation: 'update',
    data: { id: 'lamp', sync_id: syncId, device_id: 'lamp', state },
    updated_at: formatTimestamp(atMicros),
    sync_id: syncId,
  };
}

async function pullPage(store: GatewayStore, change: WireChange, serverTime: number, settledByPush: string[] = []) {
  return store.relaxed(APPLY_DELTA_PAGE, {
    changes: checkChanges([change], silentLogger(), undefined).changes,
    conflicts: [],
    serverTime: formatTimestamp(serverTime),
    last: true,
    nowMs: Date.now(),
    ...(settledByPush.length > 0 ? { settledByPush } : {}),
  });
}

/** The device reports `state` (a local change, pending in the outbox); returns its client_sync_id and stamp. */
async function deviceReports(store: GatewayStore, state: Record<string, unknown>, atMicros: number): Promise<{ clientSyncId: string; updatedAt: number }> {
  await store.durable(APPLY_LOCAL_UPDATES, { updates: [{ kind: 'state', deviceId: 'lamp', attributes: state }], nowMicros: atMicros, nowMs: Date.now() });
  const row = store.outbox.take(10).find((c) => c.entityId === 'lamp');
  if (row === undefined) throw new Error('no pending change');
  return { clientSyncId: row.clientSyncId, updatedAt: row.updatedAt };
}

function pushed(version: { clientSyncId: string; updatedAt: number }): PushDecision['version'] {
  return { entityType: 'entity_state', entityId: 'lamp', ...version };
}

describe('downlink, revised: a pulled version that meets a pending local change', () => {
  it('is not published until the push result says the server won; then the device gets it', async () => {
    const store = openTemp();
    await pullPage(store, remote({ state: 'ON' }, 's-1', T0), T0 + 1);
    const x = await deviceReports(store, { state: 'OFF' }, T0 + 2_000_000); // X, pending
    const pulled = await pullPage(store, remote({ state: 'DIM' }, 's-2', T0 + 3_000_000), T0 + 3_000_001); // Y
    expect(pulled.commands).toEqual([]);
    expect(pulled.conflicts).toBe(1);
    expect(store.entities.get('entity_state', 'lamp')?.data.state).toEqual({ state: 'OFF' });
    const winner = { data: { device_id: 'lamp', state: { state: 'DIM' } }, updatedAt: T0 + 3_000_000, syncId: 's-2', deleted: false };
    const result = await store.relaxed(APPLY_PUSH_RESULT, { decisions: [{ status: 'conflict', version: pushed(x), winner }], serverConflicts: [], nowMs: Date.now() });
    expect(result.commands).toEqual([{ deviceId: 'lamp', attributes: { state: 'DIM' } }]);
    expect(store.entities.get('entity_state', 'lamp')?.data.state).toEqual({ state: 'DIM' });
  });

  it('is never published when the push result says the local change won', async () => {
    const store = openTemp();
    await pullPage(store, remote({ state: 'ON' }, 's-1', T0), T0 + 1);
    const x = await deviceReports(store, { state: 'OFF' }, T0 + 5_000_000);
    const pulled = await pullPage(store, remote({ state: 'DIM' }, 's-2', T0 + 3_000_000), T0 + 5_000_001);
    expect(pulled.commands).toEqual([]);
    const result = await store.relaxed(APPLY_PUSH_RESULT, { decisions: [{ status: 'applied', version: pushed(x), serverSyncId: x.clientSyncId }], serverConflicts: [], nowMs: Date.now() });
    expect(result.commands).toEqual([]);
    expect(store.entities.get('entity_state', 'lamp')?.data.state).toEqual({ state: 'OFF' });
  });

  it('without a pending change, is published at once (the unrevised path)', async () => {
    const store = openTemp();
    await pullPage(store, remote({ state: 'ON' }, 's-1', T0), T0 + 1);
    const pulled = await pullPage(store, remote({ state: 'DIM' }, 's-2', T0 + 3_000_000), T0 + 3_000_001);
    expect(pulled.commands).toEqual([{ deviceId: 'lamp', attributes: { state: 'DIM' } }]);
  });
});

describe('push settlements', () => {
  it('a page computed before a push result is skipped for the entities it decided, applied for the rest', async () => {
    const store = openTemp();
    await pullPage(store, remote({ state: 'ON' }, 's-1', T0), T0 + 1);
    const x = await deviceReports(store, { state: 'OFF' }, T0 + 5_000_000);
    const settlements = new PushSettlements();
    const pushAt = T0 + 6_000_000;
    settlements.record([{ entityType: 'entity_state', entityId: 'lamp' }], pushAt);
    await store.relaxed(APPLY_PUSH_RESULT, { decisions: [{ status: 'applied', version: pushed(x), serverSyncId: x.clientSyncId }], serverConflicts: [], nowMs: Date.now() });
    // The held answer, watermarked before the push committed, carries the app's older version.
    const stale = await pullPage(store, remote({ state: 'DIM' }, 's-2', T0 + 4_000_000), pushAt - 1, settlements.after(pushAt - 1));
    expect(stale).toMatchObject({ applied: 0, superseded: 1, commands: [] });
    expect(store.entities.get('entity_state', 'lamp')?.data.state).toEqual({ state: 'OFF' });
    // A page watermarked after the push is newer than it: applied and published.
    expect(settlements.after(pushAt + 10)).toEqual([]);
    const newer = await pullPage(store, remote({ state: 'BRIGHT' }, 's-3', T0 + 7_000_000), pushAt + 10, settlements.after(pushAt + 10));
    expect(newer.commands).toEqual([{ deviceId: 'lamp', attributes: { state: 'BRIGHT' } }]);
  });

  it('keeps the latest decision per entity and forgets what an applied watermark covers', () => {
    const s = new PushSettlements();
    s.record([{ entityType: 'entity_state', entityId: 'a' }, { entityType: 'device', entityId: 'b' }], 100);
    s.record([{ entityType: 'entity_state', entityId: 'a' }], 300);
    expect(s.after(150).sort()).toEqual(['entity_state/a']);
    expect(s.after(99).sort()).toEqual(['device/b', 'entity_state/a']);
    s.prune(100);
    expect(s.size).toBe(1);
    s.prune(300);
    expect(s.size).toBe(0);
  });
});

describe('clock samples and timeouts of held requests', () => {
  it('takes the held time off the round trip; without `live` the round trip is used as it is', () => {
    const live = { reason: 'timeout', waited_ms: 25_000, max_wait_seconds: 25 };
    expect(unheldRoundTrip(1_000, 26_040, live)).toEqual({ sentAtMs: 26_000, receivedAtMs: 26_040 });
    expect(unheldRoundTrip(1_000, 1_040, undefined)).toEqual({ sentAtMs: 1_000, receivedAtMs: 1_040 });
    // A held time longer than the round trip (clock rates differ) leaves a round trip of 0, never a negative one.
    expect(unheldRoundTrip(1_000, 1_040, { ...live, waited_ms: 90 })).toEqual({ sentAtMs: 1_040, receivedAtMs: 1_040 });
    expect(liveTimeoutMs(25, 5_000)).toBe(30_000);
    expect(liveTimeoutMs(2.5)).toBe(17_500);
  });

  it('a 25 s held answer moves the offset estimate by its unheld part only', () => {
    let now = 1_000_000;
    const clock = new ServerClock({ now: () => now, logger: silentLogger() });
    clock.observe(1_000_050 * 1000, 1_000_000, 1_000_100); // offset 0, rtt 100
    expect(clock.offsetMs).toBe(0);
    for (let i = 0; i < 10; i += 1) {
      const sent = now;
      now += 25_030;
      const live = { reason: 'timeout', waited_ms: 25_000, max_wait_seconds: 25 };
      const trip = unheldRoundTrip(sent, now, live);
      clock.observe((now - 15) * 1000, trip.sentAtMs, trip.receivedAtMs); // server time issued as the hold ended
    }
    expect(Math.abs(clock.offsetMs)).toBeLessThan(20);
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CRITICAL_CONFIG, isCriticalChange } from '../../src/ingest/critical.js';
import { APPLY_LOCAL_UPDATES, roomIdFor, type LocalUpdate } from '../../src/ingest/local-writes.js';
import { silentLogger } from '../../src/log.js';
import { openStore, type GatewayStore } from '../../src/store/index.js';
import { openStoreFile, type RawDb } from '../helpers/store-file.js';
import { entity, outbox } from './harness.js';

let dir: string;
let store: GatewayStore;
/** The test's own connection: reads, and the sync client's row changes this test stands in for. */
let db: RawDb;
let micros = 1_700_000_000_000_000;
const clock = { nowMicros: () => micros };
const applyAt = (updates: LocalUpdate[], nowMs: number) => store.durable(APPLY_LOCAL_UPDATES, { updates, nowMicros: clock.nowMicros(), nowMs });
const apply = (updates: LocalUpdate[]) => applyAt(updates, 1_000);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'local-writes-'));
  store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
  db = openStoreFile(join(dir, 'gateway.db'), { writable: true });
});
afterEach(async () => {
  db.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('applyLocalUpdates', () => {
  it('coalesces a batch per entity and counts duplicates', async () => {
    const counts = await apply([
      { kind: 'state', deviceId: 'a', attributes: { x: 1 } },
      { kind: 'state', deviceId: 'a', attributes: { y: 2 } },
      { kind: 'state', deviceId: 'a', attributes: { y: 2 } },
      { kind: 'availability', deviceId: 'a', available: false },
    ]);
    expect(counts).toEqual({ written: 1, duplicates: 1, critical: 0, refused: 0, refusedDevices: [] });
    expect(entity(db, 'entity_state', 'a')?.data).toEqual({ device_id: 'a', state: { x: 1, y: 2, available: false } });
  });

  it('writes nothing when a batch changes a state and changes it back', async () => {
    await apply([{ kind: 'state', deviceId: 'a', attributes: { on: true } }]);
    const before = outbox(db, 'entity_state', 'a');
    const counts = await apply([
      { kind: 'state', deviceId: 'a', attributes: { on: false } },
      { kind: 'state', deviceId: 'a', attributes: { on: true } },
    ]);
    expect(counts.written).toBe(0);
    expect(outbox(db, 'entity_state', 'a')).toEqual(before);
  });

  it("uses 'create' until the server has the entity, then 'update'; keeps first_queued_at; keeps fields it does not own", async () => {
    await apply([{ kind: 'state', deviceId: 'a', attributes: { v: 1 } }]);
    expect(outbox(db, 'entity_state', 'a')[0]?.operation).toBe('create');
    await apply([{ kind: 'state', deviceId: 'a', attributes: { v: 2 } }]);
    expect(outbox(db, 'entity_state', 'a')[0]?.operation).toBe('create'); // still never pushed
    // the sync client pushed it and recorded the server's version (sync-outbox.ts does this)
    db.prepare("DELETE FROM outbox WHERE entity_id = 'a'").run();
    db.prepare(
      `UPDATE entities SET sync_id = 'srv-1', data = json_set(data, '$.home_id', 'home-1') WHERE entity_id = 'a'`,
    ).run();
    micros += 10;
    await applyAt([{ kind: 'state', deviceId: 'a', attributes: { v: 3 } }], 5_000);
    const row = outbox(db, 'entity_state', 'a')[0];
    expect(row?.operation).toBe('update');
    expect(row?.first_queued_at).toBe(5_000);
    expect(entity(db, 'entity_state', 'a')?.data).toEqual({ device_id: 'a', state: { v: 3 }, home_id: 'home-1' });
    expect(db.prepare("SELECT sync_id FROM entities WHERE entity_id = 'a'").get()).toEqual({ sync_id: null });
    await applyAt([{ kind: 'state', deviceId: 'a', attributes: { v: 4 } }], 9_000);
    expect(outbox(db, 'entity_state', 'a')[0]).toMatchObject({ operation: 'update', first_queued_at: 5_000 });
  });

  it('meta: room by slug, device data, room change moves the device, identical meta is a duplicate', async () => {
    const meta = (room: string | null): LocalUpdate => ({ kind: 'meta', deviceId: 'd', name: 'D', type: 'plug', room });
    expect(await apply([meta('Living Room')])).toEqual({ written: 2, duplicates: 0, critical: 0, refused: 0, refusedDevices: [] });
    expect(entity(db, 'device', 'd')?.data).toEqual({ name: 'D', device_type: 'plug', room_id: 'room-living-room' });
    expect(await apply([meta('Living Room')])).toEqual({ written: 0, duplicates: 1, critical: 0, refused: 0, refusedDevices: [] });
    expect(await apply([meta('Kitchen')])).toEqual({ written: 2, duplicates: 0, critical: 0, refused: 0, refusedDevices: [] });
    expect(entity(db, 'device', 'd')?.data.room_id).toBe('room-kitchen');
    // A meta that names no room (zigbee2mqtt, Tasmota) keeps the room, e.g. one set on the server.
    expect(await apply([meta(null)])).toEqual({ written: 0, duplicates: 1, critical: 0, refused: 0, refusedDevices: [] });
    expect(entity(db, 'device', 'd')?.data.room_id).toBe('room-kitchen');
  });

  it('flags critical changes and keeps a pending critical flag until pushed', async () => {
    await apply([{ kind: 'meta', deviceId: 'smoke-1', name: 'Smoke', type: 'smoke', room: null }]);
    expect((await apply([{ kind: 'state', deviceId: 'smoke-1', attributes: { battery: 99 } }])).critical).toBe(1);
    expect((await apply([{ kind: 'state', deviceId: 'plug', attributes: { tamper: true } }])).critical).toBe(1);
    expect((await apply([{ kind: 'state', deviceId: 'plug', attributes: { watts: 3 } }])).critical).toBe(0);
    expect(outbox(db, 'entity_state', 'plug')[0]?.critical).toBe(1); // the pending version still carries the tamper
  });
});

describe('roomIdFor', () => {
  it('slugs names and hashes names without letters', () => {
    expect(roomIdFor('Living Room')).toBe('room-living-room');
    expect(roomIdFor('  Küche / Essbereich ')).toBe('room-kuche-essbereich');
    expect(roomIdFor('!!!')).toMatch(/^room-[0-9a-f]{12}$/);
  });
});

describe('isCriticalChange', () => {
  it('uses the default device types and attributes, case-insensitively', () => {
    expect(isCriticalChange('lock', { battery: 50 })).toBe(true);
    expect(isCriticalChange('Water_Leak', { linkquality: 3 })).toBe(true);
    expect(isCriticalChange('light', { smoke: false })).toBe(true);
    expect(isCriticalChange(null, { Lock_State: 'locked' })).toBe(true);
    expect(isCriticalChange('light', { power: 'on' })).toBe(false);
    expect(isCriticalChange('lock', {})).toBe(false);
  });

  it('follows a configured list', () => {
    const config = { deviceTypes: ['siren'], attributes: ['door'] };
    expect(isCriticalChange('lock', { battery: 1 }, config)).toBe(false);
    expect(isCriticalChange('siren', { battery: 1 }, config)).toBe(true);
    expect(isCriticalChange('contact', { door: 'open' }, config)).toBe(true);
    expect(DEFAULT_CRITICAL_CONFIG.deviceTypes).toContain('smoke');
  });
});

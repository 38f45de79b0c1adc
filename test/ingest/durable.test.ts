import { afterEach, describe, expect, it } from 'vitest';
import { entity, outbox, startHarness, waitFor, type Harness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const state = (s: Record<string, unknown>): string => JSON.stringify(s);

describe('durable ingest', () => {
  it('QoS 1: when PUBACK arrives the state is visible from a second connection to the same file', async () => {
    h = await startHarness({ groupCommitWindowMs: 20 });
    const c = await h.connect();
    for (let i = 0; i < 5; i += 1) {
      await c.publishAsync(`devices/lamp-${i}/state`, state({ power: 'on', brightness: i }), { qos: 1 });
      // no flush, no wait: the PUBACK alone must mean "committed"
      const row = entity(h.reader, 'entity_state', `lamp-${i}`);
      expect(row?.data).toEqual({ device_id: `lamp-${i}`, state: { power: 'on', brightness: i } });
    }
  });

  it('QoS 0 messages are ingested through the same group commit', async () => {
    h = await startHarness();
    const c = await h.connect();
    c.publish('devices/plug-1/state', state({ power: 'off', watts: 0 }), { qos: 0 });
    const reader = h.reader;
    await waitFor(() => entity(reader, 'entity_state', 'plug-1') !== undefined, 3000, 'QoS 0 row');
    expect(entity(reader, 'entity_state', 'plug-1')?.data.state).toEqual({ power: 'off', watts: 0 });
  });

  it('merges a partial state into the stored one (shallow)', async () => {
    h = await startHarness();
    const c = await h.connect();
    await c.publishAsync('devices/th-1/state', state({ temperature: 20.5, humidity: 40, mode: { heat: true } }), { qos: 1 });
    await c.publishAsync('devices/th-1/state', state({ temperature: 21, mode: { heat: false } }), { qos: 1 });
    expect(entity(h.reader, 'entity_state', 'th-1')?.data.state).toEqual({ temperature: 21, humidity: 40, mode: { heat: false } });
  });

  it('an identical state writes nothing and queues nothing', async () => {
    h = await startHarness();
    const c = await h.connect();
    await c.publishAsync('devices/m-1/state', state({ occupancy: true, battery: 90 }), { qos: 1 });
    const before = entity(h.reader, 'entity_state', 'm-1');
    const queued = outbox(h.reader, 'entity_state', 'm-1');
    expect(queued).toHaveLength(1);
    await c.publishAsync('devices/m-1/state', state({ battery: 90, occupancy: true }), { qos: 1 });
    await c.publishAsync('devices/m-1/state', state({ battery: 90 }), { qos: 1 });
    expect(entity(h.reader, 'entity_state', 'm-1')).toEqual(before);
    expect(outbox(h.reader, 'entity_state', 'm-1')).toEqual(queued);
    expect(h.ingest.metrics().duplicates).toBe(2);
    expect(h.ingest.metrics().statesWritten).toBe(1);
  });

  it('retained meta upserts the room and the device', async () => {
    h = await startHarness();
    const c = await h.connect();
    const meta = { name: 'Hall lamp', type: 'light', room: 'Entrée Hall', model: 'LCT015' };
    await c.publishAsync('devices/lamp-9/meta', JSON.stringify(meta), { qos: 1, retain: true });
    expect(entity(h.reader, 'room', 'room-entree-hall')?.data).toEqual({ name: 'Entrée Hall' });
    expect(entity(h.reader, 'device', 'lamp-9')?.data).toEqual({
      name: 'Hall lamp',
      device_type: 'light',
      room_id: 'room-entree-hall',
      model: 'LCT015',
    });
    expect(outbox(h.reader, 'room', 'room-entree-hall')).toHaveLength(1);
    expect(outbox(h.reader, 'device', 'lamp-9')[0]?.operation).toBe('create');
    // the same meta again (a reconnect re-delivers retained meta): nothing
    await c.publishAsync('devices/lamp-9/meta', JSON.stringify(meta), { qos: 1, retain: true });
    expect(h.ingest.metrics().duplicates).toBe(1);
    expect(h.ingest.metrics().statesWritten).toBe(2);
  });

  it('keeps one outbox row per entity, holding the newest version and client_sync_id', async () => {
    h = await startHarness();
    const c = await h.connect();
    const seen: string[] = [];
    let firstQueuedAt = 0;
    for (let i = 0; i < 4; i += 1) {
      await c.publishAsync('devices/dimmer/state', state({ level: i }), { qos: 1 });
      const rows = outbox(h.reader, 'entity_state', 'dimmer');
      expect(rows).toHaveLength(1);
      const row = rows[0];
      if (!row) throw new Error('no outbox row');
      if (i === 0) firstQueuedAt = row.first_queued_at;
      expect(row.first_queued_at).toBe(firstQueuedAt);
      expect(JSON.parse(row.data)).toEqual({ device_id: 'dimmer', state: { level: i } });
      expect(row.updated_at).toBe(entity(h.reader, 'entity_state', 'dimmer')?.updatedAt);
      seen.push(row.client_sync_id);
    }
    expect(new Set(seen).size).toBe(4);
    expect([...seen].sort()).toEqual(seen); // time-ordered ids: the newest is the highest
  });

  it('stamps updated_at monotonic per entity even when the clock steps back', async () => {
    h = await startHarness();
    const c = await h.connect();
    await c.publishAsync('devices/s-1/state', state({ v: 1 }), { qos: 1 });
    const first = entity(h.reader, 'entity_state', 's-1')?.updatedAt ?? 0;
    h.clock.offsetMicros = -3_600_000_000; // the server-corrected clock moves an hour back
    await c.publishAsync('devices/s-1/state', state({ v: 2 }), { qos: 1 });
    expect(entity(h.reader, 'entity_state', 's-1')?.updatedAt).toBe(first + 1);
  });

  it('pipelined messages from one client share commits (one read chunk is handled concurrently)', async () => {
    h = await startHarness({ groupCommitWindowMs: 10 });
    const c = await h.connect();
    const n = 500;
    await Promise.all(
      Array.from({ length: n }, (_, i) => c.publishAsync(`devices/d-${i % 50}/state`, state({ n: i }), { qos: 1 })),
    );
    const m = h.ingest.metrics();
    expect(m.messagesIngested).toBe(n);
    expect(m.batchesCommitted).toBeLessThan(n / 10);
    expect(entity(h.reader, 'entity_state', 'd-49')?.data.state).toEqual({ n: 499 });
  });

  it('tells the scheduler about committed changes, flagging critical ones', async () => {
    const events: Array<{ critical: boolean; written: number; deviceIds: readonly string[] }> = [];
    h = await startHarness({ onLocalChange: (e) => events.push(e) });
    const c = await h.connect();
    await c.publishAsync('devices/door-lock/meta', JSON.stringify({ name: 'Front door', type: 'lock' }), { qos: 1 });
    await c.publishAsync('devices/lamp/state', state({ power: 'on' }), { qos: 1 });
    await c.publishAsync('devices/door-lock/state', state({ battery: 80 }), { qos: 1 });
    await c.publishAsync('devices/lamp/state', state({ power: 'on' }), { qos: 1 }); // duplicate: no event
    await waitFor(() => events.length >= 3, 2000, 'three events');
    await new Promise((r) => setTimeout(r, 30));
    expect(events).toEqual([
      { critical: false, written: 1, deviceIds: ['door-lock'] },
      { critical: false, written: 1, deviceIds: ['lamp'] },
      { critical: true, written: 1, deviceIds: ['door-lock'] },
    ]);
    expect(outbox(h.reader, 'entity_state', 'door-lock')[0]?.critical).toBe(1);
    expect(outbox(h.reader, 'entity_state', 'lamp')[0]?.critical).toBe(0);
  });

  it('a critical attribute is committed at once, whatever the window (a long window spares the SD card, never an alarm)', async () => {
    h = await startHarness({ groupCommitWindowMs: 1000, qos0WindowMs: 10_000 });
    const c = await h.connect();
    const reader = h.reader;
    c.publish('devices/hall-temp/state', state({ temperature: 21 }), { qos: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(entity(reader, 'entity_state', 'hall-temp')).toBeUndefined(); // waits for its 10 s window
    c.publish('devices/kitchen-smoke/state', state({ smoke: true }), { qos: 0 });
    // well within the window: the smoke alarm (and what was queued before it) is committed now
    await waitFor(() => entity(reader, 'entity_state', 'kitchen-smoke') !== undefined, 5000, 'the smoke alarm in the store');
    expect(entity(reader, 'entity_state', 'hall-temp')).toBeDefined();
  });
});


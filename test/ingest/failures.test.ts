import { afterEach, describe, expect, it } from 'vitest';
import { entity, outbox, startHarness, waitFor, type Harness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('commit failure (durable ingest)', () => {
  it('does not PUBACK while the store refuses writes, and recovers by itself when it accepts them again', async () => {
    h = await startHarness({ groupCommitWindowMs: 2 });
    const harness = h;
    const c = await h.connect({ reconnectPeriod: 50, clean: true });
    await c.publishAsync('devices/lock-1/state', JSON.stringify({ lock_state: 'locked' }), { qos: 1 });

    await h.store.maintenance.setLimits({ readOnly: true }); // every write now fails with SQLITE_READONLY, as a read-only disk would
    let acked = false;
    const pending = c.publishAsync('devices/lock-1/state', JSON.stringify({ lock_state: 'unlocked' }), { qos: 1 }).then(() => {
      acked = true;
    });
    await waitFor(() => harness.ingest.metrics().commitFailures >= 2, 3000, 'repeated commit failures');
    expect(acked).toBe(false);
    expect(entity(h.reader, 'entity_state', 'lock-1')?.data.state).toEqual({ lock_state: 'locked' });
    expect(h.ingest.metrics().dropped.commit_failed).toBeGreaterThanOrEqual(2);
    expect(h.broker.errorCounts().ingest_rejected).toBeGreaterThanOrEqual(1);

    await h.store.maintenance.setLimits({ readOnly: false });
    await pending; // mqtt.js re-sends the unacknowledged PUBLISH after reconnecting; now it is committed
    expect(entity(h.reader, 'entity_state', 'lock-1')?.data.state).toEqual({ lock_state: 'unlocked' });
    expect(outbox(h.reader, 'entity_state', 'lock-1')).toHaveLength(1);
  });

  it('a real SQLITE_FULL (database at its page limit) is refused the same way and recovers', async () => {
    h = await startHarness({ groupCommitWindowMs: 2 });
    const harness = h;
    const c = await h.connect({ reconnectPeriod: 50 });
    await c.publishAsync('devices/leak-1/state', JSON.stringify({ water_leak: false }), { qos: 1 });
    const pages = h.store.maintenance.pageCount();
    await h.store.maintenance.setLimits({ maxPages: pages });
    const big = 'x'.repeat(3000);
    let acked = false;
    const pending = c
      .publishAsync('devices/leak-2/state', JSON.stringify({ water_leak: true, note: big }), { qos: 1 })
      .then(() => {
        acked = true;
      });
    await waitFor(() => harness.ingest.metrics().commitFailures >= 1, 3000, 'a commit failure');
    expect(acked).toBe(false);
    expect(entity(h.reader, 'entity_state', 'leak-2')).toBeUndefined();
    await h.store.maintenance.setLimits({ maxPages: null });
    await pending;
    expect(entity(h.reader, 'entity_state', 'leak-2')?.data.state).toEqual({ water_leak: true, note: big });
  });
});

describe('malformed payloads on owned topics', () => {
  const cases: Array<{ reason: string; topic: string; payload: Buffer | string }> = [
    { reason: 'invalid_json', topic: 'devices/lamp/state', payload: '{"power": on}' },
    { reason: 'not_an_object', topic: 'devices/lamp/state', payload: '[1,2,3]' },
    { reason: 'not_an_object', topic: 'devices/lamp/state', payload: '"on"' },
    { reason: 'not_an_object', topic: 'devices/lamp/state', payload: 'null' },
    { reason: 'payload_too_large', topic: 'devices/lamp/state', payload: JSON.stringify({ blob: 'y'.repeat(5000) }) },
    { reason: 'binary_payload', topic: 'devices/lamp/state', payload: Buffer.from([0xff, 0xfe, 0x00, 0x81, 0xc3]) },
    { reason: 'invalid_schema', topic: 'devices/lamp/meta', payload: JSON.stringify({ name: 42 }) },
    { reason: 'invalid_schema', topic: 'devices/lamp/state', payload: JSON.stringify({ '': 1 }) },
    { reason: 'invalid_device_id', topic: 'devices/bad id!/state', payload: '{"a":1}' },
    { reason: 'invalid_availability', topic: 'devices/lamp/availability', payload: 'maybe' },
  ];

  it('counts each by reason, never crashes and leaves the stored state and outbox untouched', async () => {
    h = await startHarness({ maxPayloadBytes: 4096 });
    const c = await h.connect();
    await c.publishAsync('devices/lamp/state', JSON.stringify({ power: 'on' }), { qos: 1 });
    await c.publishAsync('devices/lamp/meta', JSON.stringify({ name: 'Lamp', type: 'light' }), { qos: 1 });
    const stateBefore = entity(h.reader, 'entity_state', 'lamp');
    const deviceBefore = entity(h.reader, 'device', 'lamp');
    const outboxBefore = h.reader.prepare('SELECT * FROM outbox ORDER BY entity_type, entity_id').all();
    for (const { topic, payload } of cases) {
      await c.publishAsync(topic, payload, { qos: 1 }); // acknowledged (MQTT allows it), never stored
      await c.publishAsync(topic, payload, { qos: 0 });
    }
    const expected: Record<string, number> = {};
    for (const { reason } of cases) expected[reason] = (expected[reason] ?? 0) + 2;
    await waitFor(() => Object.values(harness().ingest.metrics().dropped).reduce((a, b) => a + b, 0) === cases.length * 2);
    expect(h.ingest.metrics().dropped).toEqual(expected);
    expect(entity(h.reader, 'entity_state', 'lamp')).toEqual(stateBefore);
    expect(entity(h.reader, 'device', 'lamp')).toEqual(deviceBefore);
    expect(h.reader.prepare('SELECT * FROM outbox ORDER BY entity_type, entity_id').all()).toEqual(outboxBefore);
    expect(h.reader.prepare("SELECT COUNT(*) AS n FROM entities WHERE entity_id LIKE 'bad%'").get()).toEqual({ n: 0 });
    // the client is still connected and served
    await c.publishAsync('devices/lamp/state', JSON.stringify({ power: 'off' }), { qos: 1 });
    expect(entity(h.reader, 'entity_state', 'lamp')?.data.state).toEqual({ power: 'off' });
  });

  it('ignores topics no adapter owns, including command topics', async () => {
    h = await startHarness();
    const c = await h.connect();
    await c.publishAsync('zigbee2mqtt/bridge/state', 'online', { qos: 1 });
    await c.publishAsync('devices/lamp/set', 'not json at all', { qos: 1 });
    await c.publishAsync('devices/lamp', '{}', { qos: 1 });
    await c.publishAsync('devices/lamp/state/extra', '{}', { qos: 1 });
    const m = h.ingest.metrics();
    expect(m.messagesIn).toBe(4);
    expect(m.messagesIngested).toBe(0);
    expect(m.dropped).toEqual({});
    expect(h.reader.prepare('SELECT COUNT(*) AS n FROM entities').get()).toEqual({ n: 0 });
  });
});

function harness(): Harness {
  if (!h) throw new Error('no harness');
  return h;
}

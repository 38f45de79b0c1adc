import { afterEach, describe, expect, it } from 'vitest';
import { entity, outbox, startHarness, waitFor, type Harness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('downlink', () => {
  it('publishes a command to devices/<id>/set (JSON, QoS 1, not retained) and never ingests it', async () => {
    h = await startHarness();
    const device = await h.connect({ clientId: 'lamp-1-device' });
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ power: 'off', brightness: 10 }), { qos: 1 });
    const before = entity(h.reader, 'entity_state', 'lamp-1');
    const queued = outbox(h.reader, 'entity_state', 'lamp-1');
    const received: Array<{ topic: string; payload: string; qos: number; retain: boolean }> = [];
    device.on('message', (topic, payload, packet) => received.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }));
    await device.subscribeAsync('devices/lamp-1/set', { qos: 1 });

    const result = await h.ingest.publishCommands([{ deviceId: 'lamp-1', attributes: { power: 'on', brightness: 200 } }]);
    expect(result).toEqual({ published: 1, unrouted: 0, failed: 0 });
    await waitFor(() => received.length === 1, 2000, 'the command');
    expect(received[0]).toEqual({ topic: 'devices/lamp-1/set', payload: '{"power":"on","brightness":200}', qos: 1, retain: false });

    await new Promise((r) => setTimeout(r, 30)); // a group-commit window and more
    h.ingest.flush();
    expect(entity(h.reader, 'entity_state', 'lamp-1')).toEqual(before); // no echo into the store
    expect(outbox(h.reader, 'entity_state', 'lamp-1')).toEqual(queued); // nor into the outbox
    expect(h.ingest.metrics().commandsPublished).toBe(1);

    // the device applies it and reports: that closes the loop
    await device.publishAsync('devices/lamp-1/state', JSON.stringify({ power: 'on', brightness: 200 }), { qos: 1 });
    expect(entity(h.reader, 'entity_state', 'lamp-1')?.data.state).toEqual({ power: 'on', brightness: 200 });
  });

  it('a /set published by another client is not ingested either, and is routed for a device not yet heard from', async () => {
    h = await startHarness();
    const app = await h.connect();
    await app.publishAsync('devices/fan-2/set', JSON.stringify({ power: 'on' }), { qos: 1 });
    expect(h.reader.prepare('SELECT COUNT(*) AS n FROM entities').get()).toEqual({ n: 0 });
    const result = await h.ingest.publishCommands([
      { deviceId: 'fan-2', attributes: { power: 'off' } },
      { deviceId: 'not a valid id', attributes: { power: 'off' } },
    ]);
    expect(result).toEqual({ published: 1, unrouted: 1, failed: 0 });
  });
});

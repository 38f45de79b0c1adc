/**
 * A rogue local client must not fill the store with devices, nor the journal with its strings: new device ids per
 * MQTT identity per minute and devices in the store at most (ingest.deviceLimits), and every client-supplied string
 * of an ingest log line clipped. The real daemon, its embedded broker with users, real mqtt.js clients.
 */
import { Writable } from 'node:stream';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { user } from './harness.js';

interface Captured {
  readonly lines: string[];
  readonly stream: Writable;
}

function capture(): Captured {
  const lines: string[] = [];
  return { lines, stream: new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(...chunk.toString().split('\n').filter(Boolean)), cb()) }) };
}

function parsed(lines: readonly string[], msg: string): Array<Record<string, unknown>> {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg));
}

describe('device limits and clipped log fields', () => {
  let gw: TestGateway | undefined;
  const clients: MqttClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
    await gw?.close();
    gw = undefined;
  });

  async function start(log: Captured): Promise<{ connect: (username?: string, clientId?: string) => Promise<MqttClient> }> {
    const users = [await user('alice', 'pw-a'), await user('bob', 'pw-b')];
    gw = await startTestGateway({
      logger: createLogger({ level: 'info', destination: log.stream }),
      tune: (c) => ({
        ...c,
        mqtt: { ...c.mqtt, users },
        ingest: { ...c.ingest, deviceLimits: { newPerMinute: 5, total: 8 } },
      }),
    });
    const url = gw.mqttUrl;
    return {
      connect: async (username, clientId) => {
        const client = await mqtt.connectAsync(url, {
          reconnectPeriod: 0,
          ...(username ? { username, password: username === 'alice' ? 'pw-a' : 'pw-b' } : {}),
          ...(clientId ? { clientId } : {}),
        });
        clients.push(client);
        return client;
      },
    };
  }

  const known = (id: string): boolean => gw?.daemon.store?.entities.deviceKnown(id) ?? false;
  const dropped = (): Record<string, number> => gw?.daemon.ingest?.metrics().dropped ?? {};

  it('caps new devices per identity a minute and in total: acknowledged, not stored, counted, logged rate-limited', async () => {
    const log = capture();
    const { connect } = await start(log);
    const alice = await connect('alice');
    // Eight new devices at once: every QoS 1 PUBLISH is acknowledged, five are stored (the burst of a minute).
    await Promise.all(Array.from({ length: 8 }, (_, i) => alice.publishAsync(`devices/a-${i}/state`, JSON.stringify({ on: true }), { qos: 1 })));
    await gw?.daemon.ingest?.flush();
    expect(Array.from({ length: 8 }, (_, i) => known(`a-${i}`))).toEqual([true, true, true, true, true, false, false, false]);
    expect(dropped().device_rate_limited).toBe(3);
    // A device that exists is never refused, whatever the identity's budget.
    await alice.publishAsync('devices/a-0/state', JSON.stringify({ on: false }), { qos: 1 });
    await gw?.daemon.ingest?.flush();
    expect(gw?.daemon.store?.entities.get('entity_state', 'a-0')?.data.state).toEqual({ on: false });
    // Another identity has its own budget, but the store's total (8) is reached after three more.
    const bob = await connect('bob');
    for (let i = 0; i < 5; i += 1) await bob.publishAsync(`devices/b-${i}/state`, JSON.stringify({ on: true }), { qos: 1 });
    await gw?.daemon.ingest?.flush();
    expect(Array.from({ length: 5 }, (_, i) => known(`b-${i}`))).toEqual([true, true, true, false, false]);
    expect(dropped().device_limit).toBe(2);
    // The anonymous clients of this host are one more identity; the total still holds.
    const anon = await connect();
    await anon.publishAsync('devices/anon-1/meta', JSON.stringify({ name: 'x', type: 'light' }), { qos: 1 });
    await gw?.daemon.ingest?.flush();
    expect(known('anon-1')).toBe(false);
    const rate = parsed(log.lines, 'new device refused: this identity');
    expect(rate).toHaveLength(1); // three refusals, one line: rate-limited
    expect(rate[0]).toMatchObject({ account: 'user:alice', perMinute: 5, level: 40 });
    await waitFor(() => parsed(log.lines, 'new device refused: the store holds').length >= 1, 2_000, 'the total refusal logged');
    expect(parsed(log.lines, 'new device refused: the store holds')[0]).toMatchObject({ maxDevices: 8 });
    const metrics = gw?.daemon.ingest?.metrics();
    expect(metrics?.statesWritten).toBeGreaterThanOrEqual(9);
  });

  it('clips every client-supplied string in ingest log lines', async () => {
    const log = capture();
    const { connect } = await start(log);
    const longId = `c${'x'.repeat(255)}`; // the longest client id the broker accepts (limits.maxClientIdBytes: 256)
    const client = await connect('alice', longId);
    const longDevice = 'd'.repeat(2_000);
    await client.publishAsync(`devices/${longDevice}/state`, 'not json', { qos: 1 });
    await client.publishAsync('devices/ok-1/state', '{"broken": ', { qos: 1 });
    await waitFor(() => parsed(log.lines, 'payload refused').length >= 1, 2_000, 'a refused payload logged');
    for (const line of log.lines) expect(line.length).toBeLessThan(2_000);
    const refused = parsed(log.lines, 'payload refused')[0];
    expect(String(refused?.clientId)).toMatch(/^cx{127}…\(\+128 chars\)$/);
    expect(String(refused?.topic).length).toBeLessThanOrEqual(128 + 20);
  });
});

/**
 * Random topics and payloads thrown at every adapter's parse(): never a throw; the result is
 * undefined, a well-formed ok (typed updates) or a well-formed rejection with a stable reason. Then a sample of
 * rejected messages goes through the real broker: each is counted and the stored state does not change.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { IngestAdapter } from '../../src/ingest/adapter.js';
import { createAdapters } from '../../src/ingest/adapters/index.js';
import { AdaptersConfigSchema } from '../../src/ingest/adapters/config.js';
import { TopicRouter } from '../../src/ingest/router.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { GENERIC_MAPPINGS } from '../fixtures/adapters/generic.js';
import * as HA from '../fixtures/adapters/homeassistant.js';
import { TASMOTA_STATE } from '../fixtures/adapters/tasmota.js';
import { SHELLY_NOTIFY_STATUS } from '../fixtures/adapters/shelly.js';
import { Z2M_BRIDGE_DEVICES } from '../fixtures/adapters/zigbee2mqtt.js';
import { queryStore } from '../helpers/store-file.js';

const REASONS = ['payload_too_large', 'binary_payload', 'invalid_json', 'not_an_object', 'invalid_schema', 'invalid_device_id', 'invalid_availability', 'invalid_topic', 'unsupported_template'];
const Id = z.string().min(1).max(256);
const UpdateSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('state'), deviceId: Id, attributes: z.record(z.string().min(1), z.unknown()) }),
  z.strictObject({ kind: z.literal('availability'), deviceId: Id, available: z.boolean() }),
  z.strictObject({
    kind: z.literal('meta'),
    deviceId: Id,
    name: z.string().min(1),
    type: z.string().nullable(),
    room: z.string().nullable(),
    manufacturer: z.string().nullable().optional(),
    model: z.string().nullable().optional(),
  }),
]);
const ResultSchema = z.union([
  z.strictObject({
    ok: z.literal(true),
    updates: z.array(UpdateSchema),
    // Answers an adapter asks for (a Shelly's GetDeviceInfo request): never to a wildcard topic.
    publish: z
      .array(z.strictObject({ topic: z.string().min(1).regex(/^[^+#]*$/), payload: z.instanceof(Buffer), qos: z.union([z.literal(0), z.literal(1)]), retain: z.boolean() }))
      .optional(),
  }),
  z.strictObject({ ok: z.literal(false), reason: z.enum(REASONS), detail: z.string() }),
]);

const adaptersConfig = () => AdaptersConfigSchema.parse({ generic: { mappings: GENERIC_MAPPINGS } });
const build = (maxPayloadBytes = 4096) => createAdapters({ adapters: adaptersConfig(), native: { enabled: true, baseTopic: 'devices' }, maxPayloadBytes });

/** Topics in the shapes the adapters own, with random levels, plus fully random ones. */
const level = fc.oneof(fc.constantFrom('my_plug', 'tasmota_1', 'switch:0', 'switch:x', 'bridge', 'devices', 'config', 'state', 'online', 'set', 'POWER1', 'STATE', 'LWT', 'RESULT', 'relay', '0', ''), fc.string({ maxLength: 12 }));
const topicArb = fc.oneof(
  fc.tuple(fc.constantFrom('zigbee2mqtt', 'tele', 'stat', 'tasmota/discovery', 'shellies', 'shellyplus1pm-1', 'homeassistant', 'homeassistant/sensor', 'home', 'sensors', 'devices', 'garden/irrigation', 'sensorBedroom'), fc.array(level, { maxLength: 4 })).map(([root, rest]) => [root, ...rest].join('/')),
  fc.string({ maxLength: 40 }),
);
const fixtureJson = fc.constantFrom<unknown>(Z2M_BRIDGE_DEVICES, TASMOTA_STATE, SHELLY_NOTIFY_STATUS, HA.HA_SWITCH_CONFIG, HA.HA_DEVICE_CONFIG, HA.HA_BEDROOM_STATE, { state: 'online' });
const payloadArb = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.string({ maxLength: 64 }).map((s) => Buffer.from(s)),
  fc.json({ maxDepth: 3 }).map((s) => Buffer.from(s)),
  fixtureJson.map((v) => Buffer.from(JSON.stringify(v))),
  fc.tuple(fixtureJson, fc.nat(200)).map(([v, cut]) => Buffer.from(JSON.stringify(v).slice(0, cut))),
  fc.constantFrom('ON', 'OFF', 'Online', 'true', 'online', '', '{"state":"nope"}', `"${'x'.repeat(5000)}"`).map((s) => Buffer.from(s)),
);

function primeHomeAssistant(adapters: readonly IngestAdapter[]): void {
  const ha = adapters.find((a) => a.name === 'homeassistant');
  for (const [topic, config] of [[HA.HA_SWITCH_TOPIC, HA.HA_SWITCH_CONFIG], [HA.HA_DEVICE_TOPIC, HA.HA_DEVICE_CONFIG], [HA.HA_BEDROOM_T_TOPIC, HA.HA_BEDROOM_T_CONFIG]] as const) {
    ha?.parse(topic, Buffer.from(JSON.stringify(config)));
  }
}

describe('adapter parse() under random input', () => {
  it('never throws and always answers undefined, a typed ok or a typed rejection', () => {
    const adapters = build();
    primeHomeAssistant(adapters);
    fc.assert(
      fc.property(topicArb, payloadArb, (topic, payload) => {
        for (const adapter of adapters) {
          const result = adapter.parse(topic, payload);
          if (result !== undefined) expect(ResultSchema.safeParse(result).success, `${adapter.name} ${topic} → ${JSON.stringify(result).slice(0, 200)}`).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('commandsFor never throws on random commands', () => {
    const adapters = build();
    primeHomeAssistant(adapters);
    fc.assert(
      fc.property(fc.constantFrom('z2m:', 'tasmota:', 'shelly:', 'shelly:shellies/', 'ha:', 'generic:', 'sensor:', ''), fc.string({ maxLength: 20 }), fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 })), (prefix, local, attributes) => {
        for (const adapter of adapters) {
          for (const m of adapter.commandsFor({ deviceId: prefix + local, attributes })) {
            expect(typeof m.topic).toBe('string');
            expect(Buffer.isBuffer(m.payload)).toBe(true);
            expect(m.topic).not.toMatch(/[+#]/);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('rejected messages through the real broker', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway({
      tune: (c) => ({ ...c, sync: { ...c.sync, enabled: false }, ingest: { ...c.ingest, adapters: adaptersConfig() } }),
    });
  });
  afterAll(async () => gateway?.close());

  it('counts each rejection and leaves the stored state as it was', async () => {
    const device = await gateway.connect('fuzzer');
    // Some real state first, so that "unchanged" means something.
    await device.publishAsync('zigbee2mqtt/my_plug', JSON.stringify({ state: 'ON' }), { qos: 1 });
    await device.publishAsync(HA.HA_SWITCH_TOPIC, JSON.stringify(HA.HA_SWITCH_CONFIG), { qos: 1 });
    const snapshot = () => JSON.stringify(queryStore(gateway.daemon, (db) => db.prepare('SELECT entity_type, entity_id, data, updated_at FROM entities ORDER BY 1, 2').all()));
    const before = snapshot();
    // The daemon's adapters in the daemon's state (only the switch config learnt; rejections change nothing)
    // predict which messages it rejects; each sample gets a fresh copy, as accepted samples are never sent.
    const rejectedByFreshCopy = (topic: string, payload: Buffer) => {
      const mirror = new TopicRouter(build(gateway.daemon.config.mqtt.maxPayloadBytes));
      mirror.route(HA.HA_SWITCH_TOPIC, Buffer.from(JSON.stringify(HA.HA_SWITCH_CONFIG)));
      return mirror.route(topic, payload)?.result.ok === false;
    };
    const rejects = fc
      .sample(fc.tuple(topicArb, payloadArb), { numRuns: 4000, seed: 4 })
      .filter(([topic, payload]) => !/[+#]/.test(topic) && topic.length > 0 && !topic.startsWith('$') && rejectedByFreshCopy(topic, payload))
      .slice(0, 150);
    expect(rejects.length).toBeGreaterThan(60);
    const dropped = () => Object.values(gateway.daemon.ingest!.metrics().dropped).reduce((a, b) => a + b, 0);
    const start = dropped();
    const missed: string[] = [];
    for (const [topic, payload] of rejects) {
      const n = dropped();
      await device.publishAsync(topic, payload, { qos: 1 });
      if (dropped() === n) missed.push(`${JSON.stringify(topic)} ${JSON.stringify(payload.toString().slice(0, 80))}`);
    }
    expect(missed, missed.join('\n')).toEqual([]);
    gateway.daemon.ingest!.flush();
    expect(dropped() - start).toBe(rejects.length);
    expect(snapshot()).toBe(before);
    expect(device.connected).toBe(true);
  });
});

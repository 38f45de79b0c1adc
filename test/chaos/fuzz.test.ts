/**
 * Fuzzing (fast-check): conflict rules — any order of arrival ends in the same server state, and what a client
 * pulls afterwards is the server's decision; random bytes to every HTTP endpoint only ever get a typed 4xx (random
 * JSON is test/server/fuzz.test.ts); random bytes on the MQTT port leave the broker up.
 *
 * Restriction (docs/testing.md): the seed's 1 s window is not transitive, so order-independence holds only for sets
 * of versions whose timestamps are pairwise either ≥ 1 s apart or all within one window — the generator builds
 * clusters 10 s apart with jitter < 1 s inside a cluster. Without it arrival order decides; a test below lets
 * fast-check find such a counter-example (the hand-written one is in test/server/conflicts.test.ts).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { resolveLastWriteWins, type Version } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { send, TestClient, deviceChange, isoAt } from '../server/client.js';
import { queryStore } from '../helpers/store-file.js';
import { RELAXED } from './harness.js';

interface GenVersion {
  readonly at: number;
  readonly syncId: string;
  readonly deleted: boolean;
}

const hex = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength, maxLength });
const T0 = Date.parse('2026-03-01T00:00:00Z');
/** Versions in clusters 10 s apart, jitter < 1 s inside a cluster: pairwise ≥ 1 s apart or within one window. */
const clustered = fc
  .uniqueArray(
    fc.record({ cluster: fc.integer({ min: 0, max: 2 }), jitter: fc.integer({ min: 0, max: 999 }), syncId: hex(4, 8), deleted: fc.boolean() }),
    { minLength: 2, maxLength: 5, selector: (v) => v.syncId },
  )
  .map((vs) => vs.map((v): GenVersion => ({ at: T0 + v.cluster * 10_000 + v.jitter, syncId: v.syncId, deleted: v.deleted })));

const asVersion = (v: GenVersion): Version => ({ updatedAt: v.at * 1000, syncId: v.syncId, deleted: v.deleted });
/** The pure rule applied in arrival order: what a server that sees the versions in this order ends with. */
const foldArrival = (order: readonly GenVersion[]): GenVersion =>
  order.slice(1).reduce((held, next) => (resolveLastWriteWins(asVersion(held), asVersion(next)).winner === 'client' ? next : held), order[0] as GenVersion);

// The real-server property runs on both stores (PostgreSQL: per-home clock under the home's row lock).
forEachBackend((backend) => {
  describe(`conflict rules under fuzzing [${backend.name}]`, () => {
    let ts: TestServer;
    let homes = 0;
    beforeAll(async () => {
      ts = await startTestServer(RELAXED, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('the pure rule: any arrival order of clustered versions ends with the same winner', () => {
      fc.assert(
        fc.property(clustered.chain((vs) => fc.tuple(fc.constant(vs), fc.shuffledSubarray(vs, { minLength: vs.length }))), ([vs, shuffled]) => {
          expect(foldArrival(shuffled)).toEqual(foldArrival(vs));
        }),
        { numRuns: 500 },
      );
    });

    it('without the restriction fast-check finds an order-dependent counter-example (the window is not transitive)', () => {
      const free = fc.uniqueArray(
        fc.record({ at: fc.integer({ min: T0, max: T0 + 2500 }), syncId: hex(2, 4), deleted: fc.constant(false) }),
        { minLength: 3, maxLength: 3, selector: (v) => v.syncId },
      );
      const result = fc.check(
        fc.property(free.chain((vs) => fc.tuple(fc.constant(vs), fc.shuffledSubarray(vs, { minLength: 3 }))), ([vs, shuffled]) => {
          return foldArrival(shuffled).syncId === foldArrival(vs).syncId;
        }),
        { numRuns: 2000, seed: 42 },
      );
      expect(result.failed).toBe(true);
    });

    it('the real server: two arrival orders end in the same state, and a pulling client gets exactly that state', async () => {
      await fc.assert(
        fc.asyncProperty(clustered.chain((vs) => fc.tuple(fc.constant(vs), fc.shuffledSubarray(vs, { minLength: vs.length }))), async ([vs, shuffled]) => {
          const finals: unknown[] = [];
          for (const order of [vs, shuffled]) {
            const home = `home-fz-${(homes += 1)}`;
            const writer = new TestClient(ts.url, await ts.addClient(home));
            await writer.login();
            for (const v of order) {
              const change = { ...deviceChange('dev-x', `v-${v.syncId}`, isoAt(v.at)), sync_id: v.syncId, operation: v.deleted ? 'delete' : 'update' };
              const res = await writer.post('/api/v1/sync/push', { type: 'sync_push', client_id: writer.creds.client_id, changes: [change] });
              expect(res.status).toBe(200);
            }
            const held = (await ts.server.entities(home)).find((e) => e.entity_id === 'dev-x');
            finals.push({ deleted: held?.deleted, name: held?.deleted ? undefined : held?.data.name, at: held?.updated_at });
            const reader = new TestClient(ts.url, await ts.addClient(home));
            await reader.login();
            const delta = await reader.post('/api/v1/sync/request', { type: 'sync_request', client_id: reader.creds.client_id, last_sync: null });
            const pulled = (delta.json.changes as Array<{ entity_id: string; data: { name?: string } }>).find((c) => c.entity_id === 'dev-x');
            expect(pulled?.data.name).toBe(held?.deleted ? undefined : held?.data.name);
          }
          expect(finals[1]).toEqual(finals[0]);
          const expected = foldArrival(vs);
          expect(finals[0]).toMatchObject({ deleted: expected.deleted, ...(expected.deleted ? {} : { name: `v-${expected.syncId}` }) });
        }),
        { numRuns: 25 },
      );
    });
  });
});

describe('random bytes', () => {
  let ts: TestServer;
  let c: TestClient;
  beforeAll(async () => {
    ts = await startTestServer(RELAXED);
    c = new TestClient(ts.url, await ts.addClient('home-bytes'));
    await c.login();
  });
  afterAll(async () => {
    await ts.close();
  });

  it('to every HTTP endpoint, plain or claimed gzip, only ever get a typed 4xx and store nothing', async () => {
    const paths = ['/api/v1/sync/request', '/api/v1/sync/push', '/api/v1/sync/ack', '/api/v1/auth/token', '/api/v1/auth/refresh'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.uint8Array({ minLength: 1, maxLength: 2048 }), fc.boolean(), async (path, bytes, gz) => {
        const body = Buffer.from(bytes);
        if (/^\s*[[{"\d-tfn]/.test(body.toString('latin1'))) return; // could be JSON: the JSON fuzzer's job
        const res = await send(ts.url, path, undefined, { token: c.token, rawBody: body, ...(gz ? { headers: { 'content-encoding': 'gzip' } } : {}) });
        expect(res.status, `${path} ${body.toString('hex').slice(0, 80)}`).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.json).toMatchObject({ type: 'error', code: expect.any(String) });
      }),
      { numRuns: 300 },
    );
    expect(await ts.server.entities('home-bytes')).toEqual([]);
  });
});

describe('random bytes on the MQTT port', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it('leave the broker up: a device still gets its PUBACK and its state is stored', async () => {
    const port = Number(new URL(gw.mqttUrl).port);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 4096 }), async (bytes) => {
        await new Promise<void>((resolve) => {
          const s = connect(port, '127.0.0.1', () => s.end(Buffer.from(bytes)));
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 500).unref();
        });
      }),
      { numRuns: 60 },
    );
    const device = await gw.connect('after-garbage');
    await device.publishAsync('devices/fz-1/state', JSON.stringify({ on: true }), { qos: 1 });
    const row = queryStore(gw.daemon, (db) => db.prepare("SELECT data FROM entities WHERE entity_type = 'entity_state' AND entity_id = 'fz-1'").get()) as { data: string } | undefined;
    expect(JSON.parse(row?.data ?? '{}')).toMatchObject({ state: { on: true } });
  });
});

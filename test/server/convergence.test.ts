import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncResult, WireChange } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, stateChange } from './client.js';

interface Held {
  name: string;
  updatedAt: string;
}

/** A minimal client replica: applies pulled changes and the server's verdict on its own pushes. */
class Replica {
  readonly entities = new Map<string, Held>();
  lastSync: string | null = null;
  constructor(readonly client: TestClient) {}

  async pull(): Promise<void> {
    const delta = await this.client.pullAll(this.lastSync, { include_deleted: true });
    for (const ch of delta.changes) this.applyChange(ch);
    this.lastSync = delta.serverTime;
  }

  private applyChange(ch: WireChange): void {
    if (ch.operation === 'delete') this.entities.delete(ch.entity_id);
    else this.entities.set(ch.entity_id, { name: String(ch.data.name), updatedAt: ch.updated_at });
  }

  async push(changes: Record<string, unknown>[]): Promise<SyncResult> {
    for (const ch of changes) {
      const data = ch.data as { name: string };
      this.entities.set(ch.entity_id as string, { name: data.name, updatedAt: ch.updated_at as string });
    }
    const result = await this.client.pushOk(changes);
    for (const conflict of result.conflicts) {
      if (conflict.resolution !== 'server_wins' || conflict.server_version === null) continue;
      const v = conflict.server_version;
      if (v.deleted) this.entities.delete(conflict.entity_id);
      else this.entities.set(conflict.entity_id, { name: String(v.data.name), updatedAt: v.updated_at });
    }
    return result;
  }

  async ack(): Promise<void> {
    if (this.lastSync) await this.client.ack(this.lastSync);
  }
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

forEachBackend((backend) => {
  describe(`convergence [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({}, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('three clients pushing overlapping edits converge to one state: the latest edit of each entity', async () => {
      const replicas = await Promise.all(
        [0, 1, 2].map(async () => {
          const c = new TestClient(ts.url, await ts.addClient('home-conv'));
          await c.login();
          return new Replica(c);
        }),
      );
      const rand = lcg(42);
      const t0 = Date.parse('2026-03-01T00:00:00Z');
      const latest = new Map<string, { at: number; name: string }>();
      const usedTimes = new Set<number>();
      for (let round = 0; round < 8; round++) {
        for (const [i, r] of replicas.entries()) {
          await r.pull();
          const edits: Record<string, unknown>[] = [];
          const touched = new Set<string>();
          for (let k = 0; k < 6; k++) {
            const id = `dev-${Math.floor(rand() * 10)}`;
            if (touched.has(id)) continue;
            touched.add(id);
            let at: number;
            do at = t0 + Math.floor(rand() * 500) * 2000; // 2 s apart: the latest is unambiguous
            while (usedTimes.has(at));
            usedTimes.add(at);
            const name = `c${i}-r${round}-${id}`;
            edits.push(deviceChange(id, name, isoAt(at)));
            const prev = latest.get(id);
            if (!prev || at > prev.at) latest.set(id, { at, name });
          }
          await r.push(edits);
          await r.ack();
        }
      }
      for (const r of replicas) await r.pull();
      const server = new Map((await ts.server.entities('home-conv')).map((e) => [e.entity_id, String(e.data.name)]));
      for (const [id, { name }] of latest) expect(server.get(id), id).toBe(name);
      for (const r of replicas) {
        expect(new Map([...r.entities].map(([id, h]) => [id, h.name]))).toEqual(server);
      }
    });

    it('20 concurrent clients sync a typical home (50 entities, 20 changes each) without an error', async () => {
      const home = 'home-typical';
      const seed = new TestClient(ts.url, await ts.addClient(home));
      await seed.login();
      const t0 = Date.now();
      const base: Record<string, unknown>[] = [];
      for (let i = 0; i < 10; i++) base.push({ ...deviceChange(`room-${i}`, `Room ${i}`, isoAt(t0)), entity_type: 'room' });
      for (let i = 0; i < 20; i++) base.push(deviceChange(`dev-${i}`, `Device ${i}`, isoAt(t0), { room_id: `room-${i % 10}` }));
      for (let i = 0; i < 20; i++) base.push(stateChange(`state-${i}`, { on: false }, isoAt(t0)));
      await seed.pushOk(base);
      const clients = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = new TestClient(ts.url, await ts.addClient(home), { gzip: true, acceptGzip: true });
          await c.login();
          return c;
        }),
      );
      const statuses: number[] = [];
      await Promise.all(
        clients.map(async (c, ci) => {
          const first = await c.pullAll(null);
          expect(first.changes).toHaveLength(50);
          const changes = Array.from({ length: 20 }, (_, k) =>
            stateChange(`state-${(ci + k) % 20}`, { on: true, level: ci * 100 + k }, isoAt(t0 + 1000 + ci * 20 + k)),
          );
          const push = await c.push(changes, { gzip: true });
          statuses.push(push.status);
          expect(push.json.applied).toHaveLength(20);
          statuses.push((await c.ack(first.serverTime)).status);
          const next = await c.pullAll(first.serverTime);
          expect(next.changes.length).toBeLessThanOrEqual(50);
        }),
      );
      expect(statuses.every((s) => s === 200)).toBe(true);
      const entities = await ts.server.entities(home);
      expect(entities).toHaveLength(50);
      const finals = await Promise.all(clients.map(async (c) => (await c.pullAll(null)).changes.map((ch) => ch.sync_id).sort()));
      for (const f of finals) expect(f).toEqual(finals[0]);
    });
  });
});

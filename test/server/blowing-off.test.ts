/**
 * The original Python Blowing-Off client (v1) against the real server (docs/protocol.md §Compatibility): every request
 * it sent in a captured session (test/fixtures/funkygibbon-v1/blowing-off-requests.json) is replayed, as sent, with
 * its own clock readings taken at replay time — its `last_sync` and `sync_completed_at` are its clock "now", a little
 * after the server's — and the session completes: each request is answered 2xx, the room, device and decoded state
 * are stored. Around it, the edges of each rule: nothing a client sends moves a watermark, and every value outside a
 * rule is still refused as before.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatNaiveTimestamp, formatTimestamp, parseTimestamp } from '../../src/protocol/index.js';
import { captureLog } from '../helpers/log-capture.js';
import { sqliteStoreOf, startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt, stateChange } from './client.js';

const CapturedRequest = z.object({
  method: z.literal('POST'),
  path: z.string(),
  headers: z.record(z.string(), z.string()),
  body: z.record(z.string(), z.unknown()),
});
const CAPTURE = z
  .array(CapturedRequest)
  .parse(JSON.parse(readFileSync(new URL('../fixtures/funkygibbon-v1/blowing-off-requests.json', import.meta.url), 'utf8')));
const CAPTURED_CLIENT = 'gw-2d6e96ca892ee65f1abb47bf';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const us = (t: string): number => parseTimestamp(t) ?? Number.NaN;
const naiveNow = (offsetMs = 0): string => formatNaiveTimestamp((Date.now() + offsetMs) * 1000);

async function started(logger = captureLog('info')): Promise<{ ts: TestServer; c: TestClient; log: typeof logger }> {
  const ts = await startTestServer({ rateLimit: { ratePerSecond: 10_000, burst: 10_000 } }, { logger: logger.logger });
  cleanup.push(() => ts.close());
  const c = new TestClient(ts.url, await ts.addClient('home-1'));
  await c.login();
  return { ts, c, log: logger };
}

/**
 * A captured body as the client would send it at replay time: its client id is the one the server gave it (the
 * capture's own id is mapped, any other is kept: it names no client of this server), and its clock readings —
 * `last_sync`, `sync_completed_at` and the pushed `updated_at`s, all naive — read the clock now, pushed changes
 * keeping their spacing.
 */
function restamp(body: Record<string, unknown>, clientId: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body };
  if (out.client_id === CAPTURED_CLIENT) out.client_id = clientId;
  if (typeof out.last_sync === 'string') out.last_sync = naiveNow();
  if (typeof out.sync_completed_at === 'string') out.sync_completed_at = naiveNow();
  if (Array.isArray(out.changes)) {
    const changes = z.array(z.object({ data: z.record(z.string(), z.unknown()) }).loose()).parse(out.changes);
    const stamps = changes.map((ch) => us(String(ch.data.updated_at)));
    const shift = Date.now() * 1000 - Math.max(...stamps);
    out.changes = changes.map((ch, i) => ({
      ...ch,
      data: { ...ch.data, updated_at: formatNaiveTimestamp((stamps[i] ?? 0) + shift) },
    }));
  }
  return out;
}

describe('the Blowing-Off client (v1) against this server', () => {
  it('completes the captured session: every request of its own client 2xx; the room, device and decoded state stored', async () => {
    const { ts, c, log } = await started();
    const answers: Array<{ path: string; status: number; json: any }> = [];
    let lastServerTime = '';
    for (const captured of CAPTURE) {
      const body = restamp(captured.body, c.creds.client_id);
      const res = await c.post(captured.path, body);
      answers.push({ path: captured.path, status: res.status, json: res.json });
      if (captured.path === '/api/v1/sync/ack' && res.status === 200) {
        // a clamped ack records the server_time of the client's last sync, never its own clock reading
        expect(res.json.clamped).toBe(true);
        expect(sqliteStoreOf(ts.server).accounts.getClient(c.creds.client_id)?.lastAckWatermark).toBe(us(lastServerTime));
      }
      if (captured.path === '/api/v1/sync/request' && res.status === 200) lastServerTime = res.json.server_time;
    }
    const own = answers.slice(0, -1);
    expect(own.map((a) => a.status)).toEqual(own.map(() => 200));
    // its first request: `users` ignored and said so; its clock as last_sync, never issued: the full resync
    expect(answers[0]?.json.ignored_entity_types).toEqual(['users']);
    expect(answers[0]?.json.resync).toEqual({ code: 'INVALID_SYNC_STATE', reason: 'unissued_last_sync' });
    const push = answers.find((a) => a.path === '/api/v1/sync/push');
    expect(push?.json.applied.map((a: { status: string }) => a.status)).toEqual(['applied', 'applied', 'applied']);
    // the last request names a client id this server never issued (Blowing-Off's own uuid): 403, saying which id
    const last = answers.at(-1);
    expect(last?.status).toBe(403);
    expect(last?.json.code).toBe('FORBIDDEN');
    expect(last?.json.message).toContain(c.creds.client_id);
    const stored = await ts.server.entities('home-1');
    const room = stored.find((e) => e.entity_type === 'room');
    const device = stored.find((e) => e.entity_type === 'device');
    const state = stored.find((e) => e.entity_type === 'entity_state');
    expect(room?.data).toMatchObject({ name: 'BO Study', floor: 1 });
    expect(device?.data).toMatchObject({ name: 'BO Lamp', device_type: 'light', room_id: room?.entity_id });
    expect(state?.data).toMatchObject({ device_id: device?.entity_id, state: { power: 'on', brightness: 42 } });
    // another client of the home pulls what Blowing-Off pushed, in this profile's spelling
    const other = new TestClient(ts.url, await ts.addClient('home-1'));
    await other.login();
    const pulled = await other.pullAll(null);
    expect(pulled.changes.map((ch) => ch.entity_type).sort()).toEqual(['device', 'entity_state', 'room']);
    const reasons = log.lines.map((l) => l.reason);
    expect(reasons).toEqual(expect.arrayContaining(['ignored_entity_types', 'unissued_last_sync', 'clamped_ack', 'decoded_states']));
  });

  it('a naive last_sync ahead of anything issued is a full resync that moves nothing; a zoned one is still 409', async () => {
    const { ts, c } = await started();
    await c.pushOk([deviceChange('d-1', 'One', isoAt(Date.now()))]);
    const issued = (await c.pullAll(null)).serverTime;
    const floor = sqliteStoreOf(ts.server).sequencer.current();
    const bound = sqliteStoreOf(ts.server).watermarks.bound('home-1');
    const ahead = await c.syncRequest({ last_sync: naiveNow(3_600_000) });
    expect(ahead.status).toBe(200);
    expect(ahead.json.resync.code).toBe('INVALID_SYNC_STATE');
    expect(ahead.json.changes.map((ch: { entity_id: string; operation: string }) => [ch.entity_id, ch.operation])).toEqual([
      ['d-1', 'create'],
    ]);
    // its answer's server_time is the server's clock, and nothing it sent was recorded
    expect(Math.abs(us(ahead.json.server_time) / 1000 - Date.now())).toBeLessThan(1000);
    expect(sqliteStoreOf(ts.server).sequencer.current()).toBeLessThan((Date.now() + 1_000) * 1000);
    expect(sqliteStoreOf(ts.server).watermarks.bound('home-1')).toBeLessThan(bound + 2_000_000);
    expect(floor).toBeLessThanOrEqual(sqliteStoreOf(ts.server).sequencer.current());
    const zoned = await c.syncRequest({ last_sync: formatTimestamp(us(issued) + 3_600_000_000) });
    expect(zoned.status).toBe(409);
    expect(zoned.json.code).toBe('INVALID_SYNC_STATE');
    // a naive last_sync within what was issued is a watermark like any other
    const naiveIssued = await c.syncRequest({ last_sync: issued.slice(0, -1) });
    expect(naiveIssued.status).toBe(200);
    expect(naiveIssued.json.resync).toBeUndefined();
  });

  it('a naive sync_completed_at is clamped only within 5 s, to the client’s own last server_time; beyond, 400', async () => {
    const { ts, c } = await started();
    const other = new TestClient(ts.url, await ts.addClient('home-1'));
    await other.login();
    const mine = (await c.pullAll(null)).serverTime;
    await new Promise((r) => setTimeout(r, 20));
    const theirs = (await other.pullAll(null)).serverTime; // the home's bound is now later than what c was given
    expect(us(theirs)).toBeGreaterThan(us(mine));
    const record = (): number | null | undefined => sqliteStoreOf(ts.server).accounts.getClient(c.creds.client_id)?.lastAckWatermark;
    const far = await c.ack(naiveNow(6_000));
    expect(far.status).toBe(400);
    expect(record()).toBeNull();
    const zoned = await c.ack(formatTimestamp(us(theirs) + 1_000_000));
    expect(zoned.status).toBe(400);
    const near = await c.ack(naiveNow(800));
    expect(near.status).toBe(200);
    expect(near.json.clamped).toBe(true);
    expect(record()).toBe(us(mine));
  });

  it('entity types it does not store are ignored: only those asked for, an empty delta when none is known', async () => {
    const { c } = await started();
    await c.pushOk([deviceChange('d-1', 'One', isoAt(Date.now()))]);
    const users = await c.syncRequest({ last_sync: null, entity_types: ['users', 'houses', 'users'] });
    expect(users.status).toBe(200);
    expect(users.json.changes).toEqual([]);
    expect(users.json.ignored_entity_types).toEqual(['users', 'houses']);
    const plain = await c.syncRequest({ last_sync: null });
    expect(plain.json.changes).toHaveLength(1);
    expect(plain.json.ignored_entity_types).toBeUndefined();
  });

  it('a JSON-encoded state is decoded; one that is not a small JSON object is rejected on its own', async () => {
    const { ts, c } = await started();
    const now = isoAt(Date.now());
    const encoded = (id: string, state: string): Record<string, unknown> => {
      const change = stateChange(id, {}, now);
      return { ...change, data: { entity_id: `dev-${id}`, entity_type: 'device', state, sync_id: null } };
    };
    const result = await c.pushOk([
      encoded('s-ok', '{"power":"on"}'),
      encoded('s-array', '[1,2]'),
      encoded('s-garbage', '{"power":'),
      encoded('s-huge', JSON.stringify({ blob: 'x'.repeat(70 * 1024) })),
      encoded('s-deep', `${'{"a":'.repeat(40)}1${'}'.repeat(40)}`),
    ]);
    expect(result.applied.map((a) => a.status)).toEqual(['applied', 'rejected', 'rejected', 'rejected', 'rejected']);
    expect(result.applied[1]?.error?.message).toContain('data.state');
    const stored = (await ts.server.entities('home-1')).filter((e) => e.entity_type === 'entity_state');
    expect(stored.map((e) => e.data)).toEqual([expect.objectContaining({ device_id: 'dev-s-ok', state: { power: 'on' } })]);
    // what the decoded strings of one push may build is bounded (65,536 values): 20 states of 4,003 values each
    const big = JSON.stringify({ a: new Array(4000).fill(0) });
    const budget = await c.pushOk(Array.from({ length: 20 }, (_, i) => encoded(`s-budget-${i}`, big)));
    expect(budget.applied.map((a) => a.status)).toEqual([...new Array(16).fill('applied'), ...new Array(4).fill('rejected')]);
  });
});

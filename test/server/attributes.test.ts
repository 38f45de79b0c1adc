/**
 * Attribute-level entity_state (extension, docs/protocol.md §Attribute-level state) and the clamp (§Clamp), on the
 * real server: per-attribute last-write-wins, partial pushes and pulls negotiated with `caps`, whole states from a
 * seed peer, the delete window, a clamped future stamp.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, isoAt } from './client.js';

let seq = 0;
function stateWrite(id: string, state: Record<string, unknown>, at: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  seq += 1;
  return {
    entity_type: 'entity_state',
    entity_id: id,
    operation: 'update',
    data: { device_id: id, state },
    updated_at: at,
    client_sync_id: `c-${seq}-${Math.random().toString(36).slice(2, 8)}`,
    ...extra,
  };
}

async function stateOf(ts: TestServer, home: string, id: string): Promise<Record<string, unknown> | undefined> {
  const row = (await ts.server.entities(home)).find((e) => e.entity_type === 'entity_state' && e.entity_id === id);
  return row?.deleted ? undefined : (row?.data.state as Record<string, unknown> | undefined);
}

forEachBackend((backend) => {
describe(`attribute-level entity_state [${backend.name}]`, () => {
  let ts: TestServer;
  let device: TestClient;
  let app: TestClient;
  let seed: TestClient;
  const home = 'home-attr';
  const t0 = Date.now() - 600_000;
  beforeAll(async () => {
    ts = await startTestServer({}, { backend });
    device = new TestClient(ts.url, await ts.addClient(home));
    app = new TestClient(ts.url, await ts.addClient(home));
    seed = new TestClient(ts.url, await ts.addClient(home));
    await Promise.all([device.login(), app.login(), seed.login()]);
  });
  afterAll(async () => {
    await ts.close();
  });

  it('concurrent edits of different attributes of one device both survive, and nothing is lost', async () => {
    await device.pushOk([stateWrite('lamp-1', { state: 'ON', brightness: 10, color_temp: 300 }, isoAt(t0))]);
    // At the same moment: the device reports brightness, the app switches power off (each sends what changed).
    const fromDevice = await device.pushOk([stateWrite('lamp-1', { brightness: 80 }, isoAt(t0 + 60_000), { partial: true })]);
    const fromApp = await app.pushOk([stateWrite('lamp-1', { state: 'OFF' }, isoAt(t0 + 60_200), { partial: true })]);
    expect(fromDevice.applied[0]?.status).toBe('applied');
    expect(fromApp.applied[0]?.status).toBe('applied');
    // Nothing lost: at most the report that the app replaced the device's earlier `state` (as the seed reports it).
    expect(fromApp.conflicts.flatMap((c) => c.attributes ?? []).filter((a) => a.resolution === 'server_wins')).toEqual([]);
    expect(fromDevice.conflicts).toEqual([]);
    expect(await stateOf(ts, home, 'lamp-1')).toEqual({ state: 'OFF', brightness: 80, color_temp: 300 });
  });

  it('the same attribute resolves by the seed rules and is reported with both values; the others still apply', async () => {
    await device.pushOk([stateWrite('lamp-2', { state: 'ON', brightness: 10 }, isoAt(t0 + 10_000))]);
    const older = await app.pushOk([stateWrite('lamp-2', { brightness: 99, color: 'red' }, isoAt(t0), { partial: true })]);
    expect(older.applied[0]).toMatchObject({ status: 'applied' }); // `color` is new: that part wins
    const conflict = older.conflicts[0];
    expect(conflict).toMatchObject({ resolution: 'client_wins', entity_id: 'lamp-2' });
    expect(conflict?.attributes).toEqual([
      expect.objectContaining({ name: 'brightness', resolution: 'server_wins', reason: 'newer_on_server', server_value: 10, client_value: 99 }),
    ]);
    expect(await stateOf(ts, home, 'lamp-2')).toEqual({ state: 'ON', brightness: 10, color: 'red' });
    // Entirely older: status conflict, server_wins, nothing written.
    const lost = await app.pushOk([stateWrite('lamp-2', { brightness: 1 }, isoAt(t0 + 1000), { partial: true })]);
    expect(lost.applied[0]).toMatchObject({ status: 'conflict' });
    expect(lost.conflicts[0]).toMatchObject({ resolution: 'server_wins', reason: 'newer_on_server' });
    expect(lost.conflicts[0]?.attributes?.[0]).toMatchObject({ name: 'brightness', server_value: 10, client_value: 1 });
    // Within 1 s the higher sync_id wins, per attribute.
    const tie = await app.pushOk([{ ...stateWrite('lamp-2', { brightness: 55 }, isoAt(t0 + 10_500), { partial: true }), sync_id: '~high' }]);
    expect(tie.applied[0]?.status).toBe('applied');
    expect((await stateOf(ts, home, 'lamp-2'))?.brightness).toBe(55);
  });

  it('a whole state from a seed peer removes the older attributes it lacks, and keeps a newer one', async () => {
    await device.pushOk([stateWrite('lamp-3', { state: 'ON', brightness: 10, linkquality: 80 }, isoAt(t0))]);
    await app.pushOk([stateWrite('lamp-3', { brightness: 42 }, isoAt(t0 + 30_000), { partial: true })]);
    await seed.pushOk([stateWrite('lamp-3', { state: 'OFF' }, isoAt(t0 + 20_000))]);
    expect(await stateOf(ts, home, 'lamp-3')).toEqual({ state: 'OFF', brightness: 42 });
  });

  it('a delete of the entity beats attribute updates within its 1 s window; a later update resurrects it', async () => {
    await device.pushOk([stateWrite('lamp-4', { state: 'ON' }, isoAt(t0))]);
    const del = await app.pushOk([{ ...stateWrite('lamp-4', {}, isoAt(t0 + 5000)), operation: 'delete', data: {} }]);
    expect(del.applied[0]?.status).toBe('applied');
    const inWindow = await device.pushOk([stateWrite('lamp-4', { brightness: 3 }, isoAt(t0 + 5500), { partial: true })]);
    expect(inWindow.applied[0]?.status).toBe('conflict');
    expect(inWindow.conflicts[0]).toMatchObject({ reason: 'delete_wins', type: 'UPDATE_DELETE' });
    expect(await stateOf(ts, home, 'lamp-4')).toBeUndefined();
    const later = await device.pushOk([stateWrite('lamp-4', { brightness: 4 }, isoAt(t0 + 7000), { partial: true })]);
    expect(later.applied[0]?.status).toBe('applied');
    expect(await stateOf(ts, home, 'lamp-4')).toEqual({ brightness: 4 });
  });

  it('partial pulls are negotiated: a client with caps ["partial"] gets the changed attributes, a seed peer whole states', async () => {
    await device.pushOk([stateWrite('lamp-5', { state: 'ON', brightness: 10, color_temp: 250 }, isoAt(t0))]);
    const base = await app.pullAll(null);
    const baseSeed = await seed.pullAll(null);
    await device.pushOk([stateWrite('lamp-5', { brightness: 11 }, isoAt(t0 + 1000), { partial: true, removed_attributes: ['color_temp'] })]);
    const partial = await app.pullAll(base.serverTime, { caps: ['partial'], include_deleted: true });
    const change = partial.changes.find((c) => c.entity_id === 'lamp-5');
    expect(change).toMatchObject({ partial: true, removed_attributes: ['color_temp'], data: { device_id: 'lamp-5', state: { brightness: 11 } } });
    const whole = await seed.pullAll(baseSeed.serverTime, { include_deleted: true });
    const wholeChange = whole.changes.find((c) => c.entity_id === 'lamp-5');
    expect(wholeChange?.partial).toBeUndefined();
    expect(wholeChange?.data.state).toEqual({ state: 'ON', brightness: 11 });
  });

  it("the pusher's next delta brings another client's attribute merged into the row it wrote last", async () => {
    await device.pushOk([stateWrite('lamp-6', { state: 'ON', brightness: 1 }, isoAt(t0))]);
    const before = await device.pullAll(null);
    await app.pushOk([stateWrite('lamp-6', { brightness: 70 }, isoAt(t0 + 2000), { partial: true })]);
    const last = stateWrite('lamp-6', { state: 'OFF' }, isoAt(t0 + 3000), { partial: true });
    await device.pushOk([last]); // last writer: device
    const next = await device.pullAll(before.serverTime, { caps: ['partial'], include_deleted: true });
    const change = next.changes.find((c) => c.entity_id === 'lamp-6');
    expect(change?.data.state).toEqual({ brightness: 70 }); // not its own `state`, only what it does not know
    const seedView = await device.pullAll(before.serverTime, { include_deleted: true }); // as a seed peer: whole, new id
    const whole = seedView.changes.find((c) => c.entity_id === 'lamp-6');
    expect(whole?.data.state).toEqual({ state: 'OFF', brightness: 70 });
    // A merged version has an id of its own: a peer that skips its own version by sync_id still takes it.
    expect(whole?.sync_id).not.toBe(last.client_sync_id);
  });

  it('partial and removed_attributes are refused per change on other entity types', async () => {
    const res = await app.pushOk([
      { entity_type: 'device', entity_id: 'd-1', operation: 'update', data: { name: 'x' }, updated_at: isoAt(t0), client_sync_id: 'bad-partial', partial: true },
    ]);
    expect(res.applied[0]).toMatchObject({ status: 'rejected', error: { code: 'INVALID_ENTITY' } });
  });
});

describe(`the clamp: a clock ahead cannot win from the future [${backend.name}]`, () => {
  let ts: TestServer;
  let ahead: TestClient;
  let honest: TestClient;
  const home = 'home-clamp';
  const toleranceMs = 500;
  beforeAll(async () => {
    // The clamp's receive time is the store's clock (the database's on PostgreSQL): real time here.
    ts = await startTestServer({ metrics: { enabled: true, port: 0 }, clamp: { toleranceSeconds: toleranceMs / 1000 } }, { backend });
    ahead = new TestClient(ts.url, await ts.addClient(home));
    honest = new TestClient(ts.url, await ts.addClient(home));
    await Promise.all([ahead.login(), honest.login()]);
  });
  afterAll(async () => {
    await ts.close();
  });

  it('an edit stamped an hour ahead is ordered at receive time + tolerance, so a later real edit wins; the claim is kept', async () => {
    const sent = Date.now();
    const claimed = isoAt(sent + 3_600_000);
    const first = await ahead.pushOk([stateWrite('plug-1', { power: 'on' }, claimed)]);
    const answered = Date.now();
    expect(first.applied[0]?.status).toBe('applied');
    const clampedTo = Date.parse(String(first.applied[0]?.clamped_to));
    expect(clampedTo).toBeGreaterThanOrEqual(sent + toleranceMs - 50);
    expect(clampedTo).toBeLessThanOrEqual(answered + toleranceMs + 50);
    await new Promise((r) => setTimeout(r, toleranceMs + 1_200)); // past the ordering time and its 1 s window
    const later = await honest.pushOk([stateWrite('plug-1', { power: 'off' }, isoAt(Date.now()), { partial: true })]);
    expect(later.applied[0]?.status).toBe('applied');
    expect(await stateOf(ts, home, 'plug-1')).toEqual({ power: 'off' });
    // The claimed time is kept: the overwritten version in history carries it.
    const history = await honest.get('/api/v1/history?entity_id=plug-1');
    expect(history.json.entries[0]).toMatchObject({ why: 'overwritten', written_by: ahead.creds.client_id, claimed_updated_at: claimed.replace('Z', '000Z') });
    const metrics = await fetch(ts.metricsUrl ?? '').then((r) => r.text());
    expect(metrics).toMatch(/inbetweenies_server_clamped_total 1\b/);
  });

  it('a clamped push that loses is flagged in its conflict entry, and its delta carries claimed_updated_at', async () => {
    const now = Date.now();
    await honest.pushOk([stateWrite('plug-2', { power: 'on' }, isoAt(now + 400))]);
    const res = await ahead.pushOk([stateWrite('plug-2', { power: 'off' }, isoAt(now + 3_600_000), { sync_id: '0-low' })]);
    // ordered at receive time + 0.5 s: within 1 s of now + 0.4 s, and its sync_id is lower: it loses
    expect(res.conflicts[0]).toMatchObject({ resolution: 'server_wins' });
    expect(res.conflicts[0]?.clamped_to).toBeDefined();
    const claimed = isoAt(now + 7_200_000);
    await ahead.pushOk([stateWrite('plug-3', { power: 'on' }, claimed)]);
    const delta = await honest.pullAll(null);
    const change = delta.changes.find((c) => c.entity_id === 'plug-3');
    expect(change).toMatchObject({ claimed_updated_at: claimed.replace('Z', '000Z') });
    expect(Date.parse(String(change?.updated_at))).toBeLessThan(now + 60_000);
  });
});
});

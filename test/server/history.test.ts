/**
 * Sync history (extension, docs/protocol.md §Sync history) on the real server: losers and overwritten versions are
 * kept with who wrote them and why they lost, reachable through the signed `GET /api/v1/history`, paged and bounded;
 * a losing push is acknowledged as processed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryResponseSchema } from '../../src/protocol/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, responseSignatureOk, send, stateChange } from './client.js';

forEachBackend((backend) => {
describe(`sync history [${backend.name}]`, () => {
  let ts: TestServer;
  let a: TestClient;
  let b: TestClient;
  let other: TestClient;
  const t0 = Date.now() - 3_600_000;
  beforeAll(async () => {
    ts = await startTestServer({ hmac: { required: true }, history: { maxPageSize: 5 } }, { backend });
    const credsA = await ts.addClient('home-h');
    const credsB = await ts.addClient('home-h');
    a = new TestClient(ts.url, credsA, { sign: credsA });
    b = new TestClient(ts.url, credsB, { sign: credsB });
    const credsO = await ts.addClient('home-other');
    other = new TestClient(ts.url, credsO, { sign: credsO });
    await Promise.all([a.login(), b.login(), other.login()]);
  });
  afterAll(async () => {
    await ts.close();
  });

  it('a losing version is found in history with who wrote it, who won and why; the push acknowledged it', async () => {
    await a.pushOk([{ ...stateChange('state-1', { power: 'on' }, isoAt(t0 + 10_000)), sync_id: 'va' }]);
    const lost = await b.pushOk([{ ...stateChange('state-1', { power: 'off' }, isoAt(t0)), sync_id: 'vb' }]);
    expect(lost.applied[0]).toMatchObject({ status: 'conflict' }); // processed: it is history, not an error
    const res = await b.get('/api/v1/history?entity_id=state-1');
    expect(res.status).toBe(200);
    const body = HistoryResponseSchema.parse(res.json);
    expect(body.entries[0]).toMatchObject({
      why: 'lost',
      reason: 'newer_on_server',
      sync_id: 'vb',
      written_by: b.creds.client_id,
      decided_by: a.creds.client_id,
      attributes: ['power'],
      data: { state: { power: 'off' } },
    });
    // The push is acknowledged: a retry is answered from the stored result, and nothing more is recorded.
    const before = body.entries.length;
    await b.push([{ ...stateChange('state-1', { power: 'off' }, isoAt(t0)), sync_id: 'vb', client_sync_id: lost.applied[0]?.client_sync_id }]);
    const again = HistoryResponseSchema.parse((await b.get('/api/v1/history?entity_id=state-1')).json);
    expect(again.entries.length).toBe(before);
  });

  it('an overwritten version is kept too, whole for devices and rooms', async () => {
    await a.pushOk([{ ...deviceChange('dev-h', 'Kettle', isoAt(t0)), sync_id: 'd1' }]);
    await b.pushOk([{ ...deviceChange('dev-h', 'Tea kettle', isoAt(t0 + 5000)), sync_id: 'd2' }]);
    const body = HistoryResponseSchema.parse((await a.get('/api/v1/history?entity_id=dev-h&entity_type=device')).json);
    expect(body.entries[0]).toMatchObject({ why: 'overwritten', sync_id: 'd1', written_by: a.creds.client_id, decided_by: b.creds.client_id, data: { name: 'Kettle' } });
  });

  it('pages newest first with limit and before, bounded by history.maxPageSize', async () => {
    for (let i = 1; i <= 7; i++) await a.pushOk([stateChange('state-p', { n: i }, isoAt(t0 + i * 2000))]);
    const first = HistoryResponseSchema.parse((await a.get('/api/v1/history?entity_id=state-p&limit=4')).json);
    expect(first.entries.map((e) => e.data.state)).toEqual([{ n: 6 }, { n: 5 }, { n: 4 }, { n: 3 }]);
    expect(first.more).toBe(true);
    const second = HistoryResponseSchema.parse((await a.get(`/api/v1/history?entity_id=state-p&limit=4&before=${first.next_before}`)).json);
    expect(second.entries.map((e) => e.data.state)).toEqual([{ n: 2 }, { n: 1 }]);
    expect(second).toMatchObject({ more: false, next_before: null });
    expect((await a.get('/api/v1/history?entity_id=state-p&limit=6')).json).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('is per home, signed both ways, and refuses bad queries with 400 BAD_REQUEST', async () => {
    const foreign = HistoryResponseSchema.parse((await other.get('/api/v1/history?entity_id=state-1')).json);
    expect(foreign.entries).toEqual([]);
    const nonce = 'history-nonce-0123456789';
    const signed = await a.get('/api/v1/history?entity_id=state-1', { nonce });
    expect(responseSignatureOk(signed, a.creds, nonce)).toBe(true);
    const unsigned = await send(ts.url, '/api/v1/history?entity_id=state-1', undefined, { method: 'GET', token: a.token });
    expect(unsigned).toMatchObject({ status: 401, json: { code: 'BAD_SIGNATURE' } });
    for (const query of ['', '?entity_id=', '?entity_id=x&limit=0', '?entity_id=x&bogus=1', '?entity_id=x&entity_id=y', '?entity_id=x&entity_type=toaster', '?entity_id=x&before=-1']) {
      const res = await a.get(`/api/v1/history${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json.code, query).toBe('BAD_REQUEST');
    }
    const post = await a.post('/api/v1/history?entity_id=x', {});
    expect(post.status).toBe(405);
  });

  it('keeps at most history.maxPerEntity entries per entity and forgets them after history.retentionSeconds', async () => {
    const store = ts.server.store;
    const page = async (): Promise<number> =>
      (await store.history({ homeId: 'home-h', entityType: 'entity_state', entityId: 'state-p', limit: 100, before: null })).entries.length;
    const options = { retentionSeconds: 3600, nonceWindowSeconds: 300, minIntervalSeconds: 0 };
    expect((await store.maintain({ ...options, historyRetentionSeconds: 3600, historyMaxPerEntity: 3 }))?.syncHistory).toBeGreaterThan(0);
    expect(await page()).toBe(3);
    await new Promise((r) => setTimeout(r, 1_100));
    await store.maintain({ ...options, historyRetentionSeconds: 1, historyMaxPerEntity: 100 });
    expect(await page()).toBe(0);
  });
});
});

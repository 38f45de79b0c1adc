/**
 * End to end against the real server through a TCP proxy: a newer local version written while the older one is in
 * flight, a push whose response is lost, token expiry mid-sync, INVALID_SYNC_STATE → full resync, clock skew ±1 h,
 * server down → backoff → offline → recovery.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { ClientSyncIds, openStoreReader } from '../../src/store/index.js';
import { SyncScheduler } from '../../src/sync/index.js';
import { startProxy, type TcpProxy } from '../helpers/proxy.js';
import { startTestServer, type TestServer, sqliteStoreOf } from '../helpers/server.js';
import { makeGateway, serverState, type TestGateway } from './fixtures.js';

const HOME = 'home-1';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(overrides: Parameters<typeof startTestServer>[0] = {}, clock?: () => number): Promise<{ srv: TestServer; proxy: TcpProxy }> {
  const srv = await startTestServer({ hmac: { required: true }, ...overrides }, clock ? { clock } : {});
  cleanups.push(() => srv.close());
  const proxy = await startProxy({ target: srv.url });
  cleanups.push(() => proxy.close());
  return { srv, proxy };
}

function gateway(url: string, srv: TestServer, options: Partial<Parameters<typeof makeGateway>[0]> = {}): TestGateway {
  const gw = makeGateway({ url, creds: sqliteStoreOf(srv.server).accounts.addClient(HOME), ...options });
  cleanups.push(() => gw.close());
  return gw;
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('sync resilience', () => {
  it('a newer local version written while the older one is in flight survives and is pushed next', async () => {
    const { srv, proxy } = await setup();
    const a = gateway(proxy.url, srv);
    await a.state('lamp', { power: 'on' });
    const [v1] = a.pending();
    const held = proxy.holdResponseTo('/api/v1/sync/push');
    const cycle = a.client.runCycle();
    await held.held; // the server has answered (applied v1); the answer is withheld
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'on' });
    await a.state('lamp', { power: 'off' }); // v2, a new client_sync_id
    const [v2] = a.pending();
    expect(v2?.clientSyncId).not.toBe(v1?.clientSyncId);
    held.release();
    const report = await cycle;
    // v1's result cleared only v1 (by client_sync_id); v2 survived and went in the next batch of the same cycle
    expect(report.pushed).toBe(2);
    expect(await srv.server.applicationCount(a.client.config.clientId, v1?.clientSyncId ?? '')).toBe(1);
    expect(await srv.server.applicationCount(a.client.config.clientId, v2?.clientSyncId ?? '')).toBe(1);
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'off' });
    expect(a.localSyncId('entity_state', 'lamp')).toBe(v2?.clientSyncId);
    expect(a.pending()).toEqual([]);
  });

  it('a push whose response is lost is retried with the same client_sync_ids and applied once', async () => {
    const { srv, proxy } = await setup();
    const a = gateway(proxy.url, srv);
    for (let i = 0; i < 20; i += 1) await a.state(`dev-${i}`, { on: true });
    const ids = a.pending().map((p) => p.clientSyncId);
    const cut = proxy.cutResponseTo('/api/v1/sync/push');
    const report = await a.client.runCycle();
    await cut;
    expect(proxy.stats.cut).toBe(1);
    expect(report.pushed).toBe(20);
    expect(a.pending()).toEqual([]);
    for (const id of ids) expect(await srv.server.applicationCount(a.client.config.clientId, id)).toBe(1);
    expect(await srv.server.entities(HOME)).toHaveLength(20);
  });

  it('token expiry mid-sync: AUTH_EXPIRED refreshes once and retries; an expired refresh falls back to credentials', async () => {
    let serverAhead = 0;
    const { srv, proxy } = await setup({ tokens: { accessTtlSeconds: 60, refreshTtlSeconds: 3600 } }, () => Date.now() + serverAhead);
    const a = gateway(proxy.url, srv);
    await a.client.runCycle();
    const state = a.store.syncState;
    const first = state.get('tokens');
    await a.state('lamp', { power: 'on' });
    const held = proxy.holdResponseTo('/api/v1/sync/request');
    const cycle = a.client.runCycle();
    await held.held;
    serverAhead = 120_000; // the access token expires between pull and push (server's clock)
    held.release();
    const report = await cycle;
    expect(report.pushed).toBe(1);
    const second = state.get('tokens');
    expect(second?.access_token).not.toBe(first?.access_token);
    expect(second?.refresh_token).not.toBe(first?.refresh_token);
    // a day later (server clock): stale signature → clock re-estimated, expired access and refresh → credentials
    serverAhead = 86_400_000;
    await a.state('lamp', { power: 'off' });
    const later = await a.client.runCycle();
    expect(later.pushed).toBe(1);
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'off' });
    expect(Math.abs(a.client.clock.offsetMs - 86_400_000)).toBeLessThan(1_000);
  });

  it('refreshes the access token before it expires (less than 20 % of its lifetime left), without a 401', async () => {
    const { srv, proxy } = await setup({ tokens: { accessTtlSeconds: 100 } });
    let localAhead = 0;
    const a = gateway(proxy.url, srv, { now: () => Date.now() + localAhead });
    await a.client.runCycle();
    const state = a.store.syncState;
    const first = state.get('tokens');
    localAhead = 70_000; // 30 % left: still used as is
    await a.client.runCycle();
    expect(state.get('tokens')?.access_token).toBe(first?.access_token);
    localAhead = 85_000; // 15 % left: refreshed first
    await a.client.runCycle();
    const second = state.get('tokens');
    expect(second?.access_token).not.toBe(first?.access_token);
    expect(second?.refresh_token).not.toBe(first?.refresh_token);
  });

  it('INVALID_SYNC_STATE (tombstones purged past our watermark) → a full resync that reconciles', async () => {
    let serverAhead = 0;
    const { srv, proxy } = await setup({ tombstones: { retentionSeconds: 1 } }, () => Date.now() + serverAhead);
    const a = gateway(proxy.url, srv);
    const b = gateway(proxy.url, srv);
    await a.state('x', { v: 1 });
    await a.state('y', { v: 1 });
    await a.client.runCycle();
    await b.client.runCycle();
    // b deletes x (an outbox delete row, as a device removal would queue it)
    b.db.prepare(
      `INSERT INTO outbox (entity_type, entity_id, client_sync_id, operation, data, updated_at, priority, critical, first_queued_at)
       VALUES ('entity_state', 'x', ?, 'delete', '{}', ?, 0, 0, ?)`,
    ).run(new ClientSyncIds().next(b.client.clock.nowMicros()), b.client.clock.nowMicros(), Date.now());
    await b.client.runCycle();
    serverAhead = 10_000;
    expect(await srv.server.purgeTombstones()).toBe(1);
    // a holds an entity the server never had (known by sync_id) and a local-only pending one
    a.db.prepare(`INSERT INTO entities (entity_type, entity_id, data, updated_at, sync_id) VALUES ('entity_state', 'ghost', '{"device_id":"ghost","state":{}}', 1, 'gone-1')`).run();
    await a.state('w', { v: 2 });
    const report = await a.client.runCycle();
    expect(report.fullResync).toBe(true);
    const local = a.db.prepare<[], { entity_id: string }>('SELECT entity_id FROM entities WHERE deleted = 0 ORDER BY entity_id').all().map((r) => r.entity_id);
    expect(local).toEqual(['w', 'y']);
    expect(await serverState(srv.server, HOME, 'w')).toEqual({ v: 2 });
    const again = await a.client.runCycle();
    expect(again.fullResync).toBe(false);
  });

  it('clock skew of ±1 h: stamps are corrected, the later real write wins', async () => {
    const { srv } = await setup();
    const ahead = gateway(srv.url, srv, { skewMs: 3_600_000 });
    const behind = gateway(srv.url, srv, { skewMs: -3_600_000 });
    await ahead.state('lamp', { power: 'on' }); // stamped before first contact: +1 h, re-stamped when the offset is learnt
    await ahead.client.runCycle(); // first contact with a skewed clock: probe, corrected HMAC timestamps
    await behind.client.runCycle();
    await new Promise((r) => setTimeout(r, 1_100)); // beyond the 1 s tie window
    await behind.state('lamp', { power: 'off' }); // later in real time, 2 h "earlier" by the raw local clocks
    await behind.client.runCycle();
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'off' });
    const stamped = (await srv.server.entities(HOME)).find((e) => e.entity_id === 'lamp');
    expect(Math.abs((stamped?.updated_at ?? 0) / 1000 - Date.now())).toBeLessThan(5_000);
    // the ahead gateway's older pending change loses on the server, and it takes the winner
    await ahead.state('lamp', { power: 'dim' }); // now, corrected: newer than 'off' → it wins
    await ahead.client.runCycle();
    await behind.client.runCycle();
    expect(await serverState(srv.server, HOME, 'lamp')).toEqual({ power: 'dim' });
    expect(behind.localState('lamp')).toEqual({ power: 'dim' });
    expect(Math.abs(ahead.client.clock.offsetMs + 3_600_000)).toBeLessThan(1_000);
    expect(Math.abs(behind.client.clock.offsetMs - 3_600_000)).toBeLessThan(1_000);
  });

  it('server down → backoff → offline (buffering) → recovers by itself when it is back', async () => {
    const { srv, proxy } = await setup();
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({ write: (chunk: Buffer, _enc, done) => { lines.push(chunk.toString()); done(); } }),
    });
    const a = gateway(proxy.url, srv, { config: { headersTimeoutMs: 500 } });
    const scheduler = new SyncScheduler({
      runner: a.client,
      logger,
      state: a.store.syncState,
      minIntervalMs: 100,
      maxIntervalMs: 400,
      retryDelaysMs: [20, 40, 80],
      maxRetries: 3,
      probeIntervalMs: 100,
      stopTimeoutMs: 1_000,
    });
    cleanups.push(() => scheduler.stop());
    await a.state('lamp', { power: 'on' });
    scheduler.start();
    await until('first sync', () => scheduler.status().lastReport !== null);
    const dataDir = srv.dataDir;
    await srv.server.close(); // down: the proxy's upstream connections are refused
    proxy.dropAll();
    await a.state('lamp', { power: 'off' });
    await a.state('plug', { power: 'on' });
    scheduler.notifyLocalChange(true);
    await until('offline', () => scheduler.status().mode === 'offline');
    expect(a.pending()).toHaveLength(2); // buffered
    const back = await startTestServer({ hmac: { required: true } }, { dataDir });
    cleanups.push(() => back.close());
    proxy.setTarget(back.url);
    await until('recovery', () => scheduler.status().mode === 'online' && a.pending().length === 0);
    expect(await serverState(back.server, HOME, 'lamp')).toEqual({ power: 'off' });
    expect(await serverState(back.server, HOME, 'plug')).toEqual({ power: 'on' });
    const transitions = lines.map((l) => JSON.parse(l) as { to?: string }).filter((l) => l.to !== undefined).map((l) => l.to);
    expect(transitions).toEqual(['online', 'backoff', 'offline', 'online']);
    const persisted = openStoreReader(a.store.path); // what the file says, not what the process remembers
    expect(persisted.syncState.get('mode')).toBe('online');
    persisted.close();
  });
});

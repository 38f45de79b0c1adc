/**
 * The cheap cycle: idle cycles skip the sync_ack until it is older than ackMaxAgeMs,
 * sync-side commits run with relaxed durability and restore FULL for ingest, and bearer requests carry lean headers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openWriteConnection as openStore, relaxedTransaction, type Db } from '../../src/store/db.js';
import { ackDue } from '../../src/sync/index.js';
import { startTestServer, type TestServer, sqliteStoreOf } from '../helpers/server.js';
import { makeGateway, type TestGateway } from './fixtures.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The watermark as the store file holds it (the test's own connection). */
function fileWatermark(db: { prepare(sql: string): { pluck(): { get(): unknown } } }): string | undefined {
  const raw = db.prepare("SELECT value FROM sync_state WHERE key = 'last_sync'").pluck().get();
  return typeof raw === 'string' ? (JSON.parse(raw) as string) : undefined;
}

describe('ackDue (pure rule)', () => {
  const base = { moved: 0, fullResync: false, lastAckAtMs: 1_000_000, nowMs: 1_000_000 + 5_000, maxAgeMs: 600_000 };
  it('skips the ack of an idle cycle while the last ack is younger than the max age', () => {
    expect(ackDue(base)).toBe(false);
  });
  it('acks a cycle that moved something, a full resync, the first cycle, and after the max age', () => {
    expect(ackDue({ ...base, moved: 1 })).toBe(true);
    expect(ackDue({ ...base, fullResync: true })).toBe(true);
    expect(ackDue({ ...base, lastAckAtMs: undefined })).toBe(true);
    expect(ackDue({ ...base, nowMs: base.lastAckAtMs + 600_000 })).toBe(true);
    expect(ackDue({ ...base, nowMs: base.lastAckAtMs + 599_999 })).toBe(false);
  });
  it('acks when the local clock stepped back behind the last ack', () => {
    expect(ackDue({ ...base, nowMs: base.lastAckAtMs - 1 })).toBe(true);
  });
});

describe('idle cycles against the real server', () => {
  let srv: TestServer;
  let gw: TestGateway | undefined;
  beforeEach(async () => {
    srv = await startTestServer({ hmac: { required: true } });
  });
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await srv.close();
  });

  it('an idle cycle is one round trip without an ack; the ack comes back with a change or after ackMaxAgeMs', async () => {
    gw = makeGateway({ url: srv.url, creds: await srv.addClient('home-1'), config: { ackMaxAgeMs: 400 } });
    const clientId = gw.client.config.clientId;
    await gw.state('lamp-1', { power: 'on' });
    const first = await gw.client.runCycle();
    expect(first).toMatchObject({ pushed: 1, acked: true });
    const ackedAt = sqliteStoreOf(srv.server).accounts.getClient(clientId)?.lastAckAt;
    expect(ackedAt).toBeGreaterThan(0);

    const requests0 = gw.client.transport.stats.requests;
    const idle = await gw.client.runCycle();
    expect(idle).toMatchObject({ pulled: 0, pushed: 0, acked: false });
    expect(gw.client.transport.stats.requests - requests0).toBe(1); // sync_request only
    expect(sqliteStoreOf(srv.server).accounts.getClient(clientId)?.lastAckAt).toBe(ackedAt);

    await gw.state('lamp-1', { power: 'off' });
    expect(await gw.client.runCycle()).toMatchObject({ pushed: 1, acked: true });
    const second = sqliteStoreOf(srv.server).accounts.getClient(clientId);
    expect(await gw.client.runCycle()).toMatchObject({ acked: false });

    await sleep(450);
    const late = await gw.client.runCycle();
    expect(late).toMatchObject({ pulled: 0, pushed: 0, acked: true });
    const record = sqliteStoreOf(srv.server).accounts.getClient(clientId);
    expect(record?.lastAckAt).toBeGreaterThan(second?.lastAckAt ?? Infinity);
    expect(record?.lastAckWatermark).toBeGreaterThan(second?.lastAckWatermark ?? Infinity);
  });

  it('an idle poll commits nothing; the watermark an ack announces is in the file before the ack leaves', async () => {
    const atAck: Array<string | undefined> = [];
    gw = makeGateway({
      url: srv.url,
      creds: await srv.addClient('home-1'),
      config: { ackMaxAgeMs: 400 },
      faults: (point) => {
        if (point === 'before_ack') atAck.push(gw ? fileWatermark(gw.db) : undefined);
      },
    });
    const g = gw;
    await g.state('lamp-1', { power: 'on' });
    const first = await g.client.runCycle();
    expect(atAck).toEqual([first.serverTime]);
    await g.store.settled();
    const version = (): unknown => g.db.prepare('PRAGMA data_version').pluck().get();
    const before = version();
    const idle = await g.client.runCycle();
    await g.store.settled();
    expect(idle).toMatchObject({ pulled: 0, pushed: 0, acked: false });
    expect(version()).toBe(before); // nothing committed by anyone
    expect(g.store.syncState.get('last_sync')).toBe(idle.serverTime); // remembered
    expect(fileWatermark(g.db)).toBe(first.serverTime); // the file still has the last saved one
    await sleep(450);
    const late = await g.client.runCycle(); // idle, but the ack is due
    expect(late).toMatchObject({ pulled: 0, acked: true });
    expect(atAck).toEqual([first.serverTime, late.serverTime]);
  });

  it('signs bearer requests without the client-id header; replies carry no charset and no Vary when small', async () => {
    gw = makeGateway({ url: srv.url, creds: await srv.addClient('home-1') });
    await gw.state('lamp-1', { power: 'on' });
    await gw.client.runCycle(); // HMAC required: every request of the cycle verified without the header
    expect((await srv.server.entities('home-1')).map((e) => e.entity_id)).toContain('lamp-1');
    const res = await request(`${srv.url}/api/v1/health`);
    await res.body.text();
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers.vary).toBeUndefined();
  });
});

describe('relaxedTransaction', () => {
  let dir: string;
  let db: Db;
  const level = (): number => Number(db.pragma('synchronous', { simple: true }));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ib-relaxed-'));
    db = openStore(join(dir, 'gateway.db'));
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits with synchronous=NORMAL and restores FULL, also when the transaction throws and rolls back', () => {
    expect(level()).toBe(2);
    const inside = relaxedTransaction(db, () => {
      db.prepare("INSERT INTO sync_state (key, value) VALUES ('mode', '\"online\"')").run();
      return level();
    });
    expect(inside).toBe(1);
    expect(level()).toBe(2);
    expect(() =>
      relaxedTransaction(db, () => {
        db.prepare("INSERT INTO sync_state (key, value) VALUES ('last_sync', '\"x\"')").run();
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(level()).toBe(2);
    expect(db.prepare('SELECT key FROM sync_state ORDER BY key').pluck().all()).toEqual(['mode']);
  });

  it('inside an enclosing transaction leaves durability to the enclosing commit', () => {
    const inside = db.transaction(() => relaxedTransaction(db, level))();
    expect(inside).toBe(2);
    expect(level()).toBe(2);
  });
});

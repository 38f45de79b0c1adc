/**
 * The real gateway daemon against a FunkyGibbon v1 (the fake of test/helpers/funkygibbon-v1.ts, checked against the
 * captures by fake-funkygibbon.test.ts), on `server.profile: auto` (docs/protocol.md §Compatibility): it finds out
 * what the server is from its answers (no health → the seed's own request works), remembers it, pulls the server's
 * rooms and devices into the local store, pushes the device it has in the shape the server takes, keeps the entity
 * state pending, and says all of it in `status` — without a single request the server answers 4xx/5xx after the probe.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '../../src/config/gateway-config.js';
import { startFakeFunkyGibbon, CAPTURED_HOUSE_ID, type FakeFunkyGibbon } from '../helpers/funkygibbon-v1.js';
import { fastSync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { captureLog } from '../helpers/log-capture.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const withServer = (server: Partial<GatewayConfig['server']>) => (config: GatewayConfig): GatewayConfig =>
  fastSync({ ...config, server: { ...config.server, ...server } });

async function fake(): Promise<FakeFunkyGibbon> {
  const fg = await startFakeFunkyGibbon();
  cleanup.push(() => fg.close());
  return fg;
}

async function gateway(fg: FakeFunkyGibbon, options: { dataDir?: string; server?: Partial<GatewayConfig['server']>; logger?: ReturnType<typeof captureLog> } = {}): Promise<TestGateway> {
  const gw = await startTestGateway({
    serverUrl: fg.url,
    clientId: 'peer-gw-3',
    clientSecret: 'a-secret-the-server-ignores',
    tune: withServer({ token: 'static-token', ...options.server }),
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.logger ? { logger: options.logger.logger } : {}),
  });
  cleanup.push(() => gw.close());
  return gw;
}

const sync = (fg: FakeFunkyGibbon) => fg.requests.filter((r) => r.path.startsWith('/api/v1/sync/'));

describe('the gateway against FunkyGibbon v1 (server.profile auto)', () => {
  it('pulls its rooms and devices, pushes the device it has, keeps the entity state pending, and says so', async () => {
    const fg = await fake();
    const log = captureLog('info');
    const gw = await gateway(fg, { logger: log });
    const lamp = await gw.connect('lamp-1');
    await lamp.publishAsync('devices/lamp-1/meta', JSON.stringify({ name: 'Desk Lamp', type: 'light' }), { qos: 1, retain: true });
    await lamp.publishAsync('devices/lamp-1/state', JSON.stringify({ state: 'ON', brightness: 80 }), { qos: 1 });
    const store = gw.daemon.store;
    if (store === undefined) throw new Error('no store');
    // the server's three rooms and three devices, in the local store
    await waitFor(() => store.entities.all().filter((e) => e.entityType === 'room').length === 3, 15_000, 'the server’s rooms');
    const local = store.entities.all();
    expect(local.filter((e) => e.entityType === 'device').map((e) => e.data.name).sort()).toEqual(
      expect.arrayContaining(['Bedside Lamp', 'Kitchen Light', 'Main Light']),
    );
    expect(local.find((e) => e.entityId === 'a1322aeb-7a79-4502-b168-2a6319b22786')?.data).toMatchObject({ name: 'Kitchen', floor: 1 });
    // the device it has, on the server, in the house its rooms named; the state stays pending
    await waitFor(() => fg.entities.has('device/lamp-1'), 15_000, 'the device pushed to the server');
    expect(fg.entities.get('device/lamp-1')?.data).toMatchObject({ name: 'Desk Lamp', house_id: CAPTURED_HOUSE_ID });
    await waitFor(() => sync(fg).some((r) => r.path === '/api/v1/sync/ack' && r.status === 200), 10_000, 'an ack');
    // a few more cycles with the state pending: none of them pushes it, none fails
    const seen = sync(fg).filter((r) => r.path === '/api/v1/sync/request').length;
    await waitFor(() => sync(fg).filter((r) => r.path === '/api/v1/sync/request').length >= seen + 3, 10_000, 'three more cycles');
    expect(store.outbox.take(10).map((c) => c.entityType)).toEqual(['entity_state']);
    // what it sent: what the server takes — never gzip, entity_types always, naive timestamps, its token, signed
    const requests = sync(fg);
    expect(requests.every((r) => r.status === 200)).toBe(true);
    expect(requests.every((r) => r.headers['content-encoding'] === undefined)).toBe(true);
    expect(requests.every((r) => r.headers.authorization === 'Bearer static-token')).toBe(true);
    expect(requests.every((r) => typeof r.headers['x-inbetweenies-signature'] === 'string')).toBe(true);
    const bodies = requests.map((r) => r.body as Record<string, unknown>);
    for (const b of bodies.filter((x) => x.type === 'sync_request')) {
      expect(b.entity_types).toEqual(['devices', 'rooms']);
      if (typeof b.last_sync === 'string') expect(b.last_sync).not.toMatch(/(Z|[+-]\d\d:\d\d)$/);
    }
    for (const b of bodies.filter((x) => x.type === 'sync_ack')) expect(b.sync_completed_at).not.toMatch(/(Z|[+-]\d\d:\d\d)$/);
    const pushed = bodies.filter((x) => x.type === 'sync_push').flatMap((x) => x.changes as Array<{ entity_type: string }>);
    expect(pushed.map((c) => c.entity_type)).toEqual(['device']);
    expect(fg.requests.filter((r) => r.path === '/api/v1/health')).toHaveLength(1);
    expect(fg.requests.filter((r) => r.path.startsWith('/api/v1/auth'))).toHaveLength(0);
    // status says what the server is and what it cannot do, in words; the scheduler is online
    const status = gw.daemon.status();
    expect(status.server?.profile).toBe('funkygibbon-v1');
    expect(status.server?.decided_by).toBe('sync_probe');
    expect(Object.values(status.server?.problems ?? {}).join('\n')).toMatch(/does not sign.*\n?.*entity_state changes are kept pending/s);
    expect(status.scheduler?.mode).toBe('online');
    const said = log.lines.filter((l) => String(l.msg).includes('server profile funkygibbon-v1'));
    expect(said).toHaveLength(1);
    expect(String(said[0]?.msg)).toContain('unsigned responses are accepted');
  });

  it('remembers the profile: after a restart it never asks for health again', async () => {
    const fg = await fake();
    const dataDir = mkdtempSync(join(tmpdir(), 'ib-gw-fg-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = await gateway(fg, { dataDir });
    await waitFor(() => first.daemon.status().server?.profile === 'funkygibbon-v1', 15_000, 'the profile decided');
    await first.close();
    const health = fg.requests.filter((r) => r.path === '/api/v1/health').length;
    expect(health).toBe(1);
    const again = await gateway(fg, { dataDir });
    const before = sync(fg).length;
    await waitFor(() => sync(fg).length > before + 2, 10_000, 'cycles after the restart');
    expect(fg.requests.filter((r) => r.path === '/api/v1/health').length).toBe(health);
    expect(again.daemon.status().server?.profile).toBe('funkygibbon-v1');
  });

  it('a server that answers our request shape with 500 is asked the seed’s plain shape before anything backs off', async () => {
    // as in the captures: a proxy answers health and tokens, FunkyGibbon v1 behind it 500s without entity_types
    const fg = await startFakeFunkyGibbon({ behindCaptureProxy: true });
    cleanup.push(() => fg.close());
    const gw = await gateway(fg, { server: { hmac: false, token: undefined } });
    const store = gw.daemon.store;
    await waitFor(() => (store?.entities.all().filter((e) => e.entityType === 'room').length ?? 0) === 3, 15_000, 'the rooms');
    const status = gw.daemon.status();
    expect(status.server).toMatchObject({ profile: 'funkygibbon-v1', decided_by: 'fallback' });
    expect(status.scheduler?.consecutiveFailures).toBe(0);
    const requests = sync(fg);
    expect(requests.filter((r) => r.status === 500)).toHaveLength(1); // our shape, once
    expect(requests.at(-1)?.status).toBe(200);
  });

  it('explicit inbetweenies against FunkyGibbon v1 fails and says what to set', async () => {
    const fg = await fake();
    const gw = await gateway(fg, { server: { profile: 'inbetweenies' } });
    await waitFor(() => gw.daemon.status().lastError !== null, 10_000, 'the first failure');
    expect(gw.daemon.status().lastError?.message).toContain('set server.profile to funkygibbon-v1 or auto');
  });

  it('a server whose delta names no house gets nothing pushed, and status says what to set', async () => {
    const fg = await startFakeFunkyGibbon({ entities: [] });
    cleanup.push(() => fg.close());
    const gw = await gateway(fg);
    const lamp = await gw.connect('lamp-2');
    await lamp.publishAsync('devices/lamp-2/meta', JSON.stringify({ name: 'Hall Lamp', type: 'light' }), { qos: 1, retain: true });
    await waitFor(() => Object.keys(gw.daemon.status().server?.problems ?? {}).includes('house'), 15_000, 'the house problem');
    expect(gw.daemon.status().server?.problems.house).toContain('set server.houseId');
    expect(sync(fg).filter((r) => r.path === '/api/v1/sync/push')).toHaveLength(0);
    expect(gw.daemon.status().scheduler?.mode).toBe('online');
  });
});

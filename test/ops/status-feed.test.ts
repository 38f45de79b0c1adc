/**
 * The status page's pieces on their own: the sync mode in the words the page shows (from whatever the scheduler
 * reports, live fields or not), and the event stream's heartbeat, coalescing and client bound on a real HTTP server
 * at port 0 with a real event hub.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EventHub } from '../../src/daemon/events.js';
import { syncLabel, type PageStatus } from '../../src/daemon/page-data.js';
import { StatusFeed } from '../../src/daemon/status-feed.js';
import { GatewayError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { DeviceWithRoom } from '../../src/store/device-queries.js';
import { openSse, type SseStream } from './http-client.js';

describe('sync mode as the page says it', () => {
  it('live while a live wait is held, polling when online without one, offline otherwise', () => {
    expect(syncLabel({ mode: 'online', via: 'live', live: { heldForMs: 1200 } })).toEqual({ label: 'live', mode: 'online', heldForMs: 1200 });
    expect(syncLabel({ mode: 'online', via: 'polling', live: { heldForMs: null } })).toEqual({ label: 'polling', mode: 'online', heldForMs: null });
    expect(syncLabel({ mode: 'online', consecutiveFailures: 0 })).toEqual({ label: 'polling', mode: 'online', heldForMs: null }); // no live fields
    expect(syncLabel({ mode: 'backoff', via: 'live', live: { heldForMs: 5 } })).toEqual({ label: 'offline', mode: 'backoff', heldForMs: null });
    expect(syncLabel({ mode: 'offline' })).toEqual({ label: 'offline', mode: 'offline', heldForMs: null });
    expect(syncLabel({ mode: 'stopped' }).label).toBe('offline');
    expect(syncLabel(null)).toEqual({ label: 'offline', mode: 'unconfigured', heldForMs: null });
  });
});

const device = (id: string, state: Record<string, unknown>): DeviceWithRoom => ({ id, name: id, type: null, roomId: null, room: null, state, updatedAt: null, synced: false, pending: true });

describe('the event stream', () => {
  let server: Server | undefined;
  let feed: StatusFeed | undefined;
  const streams: SseStream[] = [];
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    feed?.close();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = feed = undefined;
  });

  async function serve(options: { heartbeatMs: number; maxClients: number }): Promise<{ url: string; hub: EventHub; reads: string[][]; states: Map<string, Record<string, unknown>> }> {
    const hub = new EventHub(silentLogger());
    const states = new Map<string, Record<string, unknown>>([['a', { on: true }]]);
    const reads: string[][] = [];
    const status: PageStatus = {
      version: 't',
      pid: 1,
      uptimeSeconds: 0,
      health: { healthy: true, reasons: [] },
      sync: { label: 'offline', mode: 'unconfigured', heldForMs: null, lastSyncAt: null, lastSyncOk: null, lastError: null, nextSyncAt: null, pending: 0, oldestPendingAgeMs: null },
      mqtt: { clients: 0, address: null },
      devices: 1,
      conflicts: 0,
    };
    const f = new StatusFeed({
      hub,
      logger: silentLogger(),
      maxClients: options.maxClients,
      heartbeatMs: options.heartbeatMs,
      flushMs: 50,
      status: () => status,
      devices: () => [...states].map(([id, s]) => device(id, s)),
      devicesOf: (ids) => {
        reads.push([...ids]);
        return { devices: ids.filter((id) => states.has(id)).map((id) => device(id, states.get(id) ?? {})), missing: ids.filter((id) => !states.has(id)) };
      },
      conflicts: () => [],
    });
    feed = f;
    const srv = createServer((req, res) => {
      try {
        f.open(req, res);
      } catch (err) {
        res.writeHead(err instanceof GatewayError ? err.status : 500).end();
      }
    });
    server = srv;
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, hub, reads, states };
  }

  it('a heartbeat comment every heartbeatMs; changes of many events coalesced into one read; removed devices named', async () => {
    const { url, hub, reads, states } = await serve({ heartbeatMs: 100, maxClients: 4 });
    const s = await openSse(url);
    streams.push(s);
    await s.next((e) => e.event === 'snapshot', 2000, 'the snapshot');
    await s.next((e) => e.event === 'comment' && e.data === 'ping', 2000, 'a heartbeat');
    states.set('b', { on: false });
    states.delete('a');
    for (let i = 0; i < 20; i += 1) hub.emit({ kind: 'devices', ids: ['a', 'b'] });
    const change = await s.next((e) => e.event === 'devices', 2000, 'the devices event');
    expect(change.data).toEqual({ full: false, devices: [device('b', { on: false })], removed: ['a'] });
    expect(reads).toEqual([['a', 'b']]); // twenty events, one read
    hub.emit({ kind: 'sync', ok: true, pulled: 3 });
    const full = await s.next((e) => e.event === 'devices' && (e.data as { full: boolean }).full, 2000, 'a full list after a sync that pulled');
    expect(full.data).toEqual({ full: true, devices: [device('b', { on: false })], removed: [] });
  });

  it('at most maxClients streams; nothing is read while no stream is open', async () => {
    const { url, hub, reads } = await serve({ heartbeatMs: 15_000, maxClients: 1 });
    hub.emit({ kind: 'devices', ids: ['a'] });
    await new Promise((r) => setTimeout(r, 150));
    expect(reads).toEqual([]);
    expect(hub.listenerCount).toBe(0);
    const one = await openSse(url);
    streams.push(one);
    expect(one.status).toBe(200);
    const two = await openSse(url);
    streams.push(two);
    expect(two.status).toBe(503);
    one.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(feed?.clients).toBe(0);
    expect(hub.listenerCount).toBe(0);
  });
});

/**
 * Cross-instance wake-ups on a real PostgreSQL cluster (src/server/pg/notifier.ts): a push committed through one
 * store instance reaches the listeners of the home on another instance, within milliseconds, and only after the
 * commit; an instance's own notifications are skipped (it publishes in-process); a lost LISTEN connection is
 * re-opened and every held home is woken once, since a notification may have been missed.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { ChangeEvent } from '../../src/server/live/index.js';
import { PgChangeNotifier } from '../../src/server/pg/notifier.js';
import { PgStore } from '../../src/server/pg/store.js';
import { freshDatabase } from '../helpers/pg.js';

function waitFor<T>(events: T[], n: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (events.length >= n) resolve();
      else if (Date.now() > deadline) reject(new Error(`waited ${ms} ms for ${n} events, got ${events.length}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

const change = (id: string, csid: string) => ({
  entity_type: 'device',
  entity_id: id,
  operation: 'update' as const,
  data: { name: id },
  updated_at: new Date().toISOString(),
  client_sync_id: csid,
});

describe('LISTEN/NOTIFY between instances', () => {
  let url: string;
  let a: PgStore;
  let b: PgStore;
  let notifierB: PgChangeNotifier;

  beforeAll(async () => {
    url = await freshDatabase('notify');
    a = await PgStore.open({ url, clock: Date.now, instanceId: 'instance-a' });
    b = await PgStore.open({ url, clock: Date.now, instanceId: 'instance-b' });
    notifierB = new PgChangeNotifier({ url, instanceId: 'instance-b', logger: silentLogger(), retryMs: [50, 200] });
    await notifierB.start();
  });

  afterAll(async () => {
    await notifierB?.close();
    await a?.close();
    await b?.close();
  });

  it('a commit on instance A wakes the home on instance B; B skips its own; other homes are not woken', async () => {
    const app = await a.addClient('home-n');
    const gw = await b.addClient('home-n');
    await a.addClient('home-other');
    const events: ChangeEvent[] = [];
    const other: ChangeEvent[] = [];
    const off = notifierB.subscribe('home-n', (e) => events.push(e));
    const offOther = notifierB.subscribe('home-other', (e) => other.push(e));
    const started = performance.now();
    const res = await a.applyPush({ homeId: 'home-n', clientId: app.client_id }, [change('plug-1', 'n1')]);
    await waitFor(events, 1, 2000);
    const latencyMs = performance.now() - started;
    expect(events[0]).toEqual({ homeId: 'home-n', originClientId: app.client_id, seq: res.serverTime });
    expect(latencyMs).toBeLessThan(2000);
    // B's own push: its NOTIFY comes back to B and is skipped by instance id (B publishes in-process instead)
    await b.applyPush({ homeId: 'home-n', clientId: gw.client_id }, [change('plug-2', 'n2')]);
    // a push that writes nothing (an identical retry) sends no notification
    await a.applyPush({ homeId: 'home-n', clientId: app.client_id }, [change('plug-1', 'n1')]);
    await a.applyPush({ homeId: 'home-n', clientId: app.client_id }, [change('plug-3', 'n3')]);
    await waitFor(events, 2, 2000);
    await new Promise((r) => setTimeout(r, 100));
    expect(events.map((e) => e.originClientId)).toEqual([app.client_id, app.client_id]);
    expect(notifierB.received).toBe(2);
    expect(other).toEqual([]);
    off();
    offOther();
  });

  it('a lost LISTEN connection is re-opened and every held home is woken once', async () => {
    const app = await a.addClient('home-r');
    const events: ChangeEvent[] = [];
    const off = notifierB.subscribe('home-r', (e) => events.push(e));
    const admin = new pg.Client(url);
    await admin.connect();
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'inbetweenies-server-listen'");
    await admin.end();
    await waitFor(events, 1, 5000);
    expect(events[0]?.originClientId).toBe(''); // the wake-all after the reconnect
    expect(notifierB.reconnects).toBe(1);
    await a.applyPush({ homeId: 'home-r', clientId: app.client_id }, [change('lamp', 'r1')]);
    await waitFor(events, 2, 2000);
    expect(events[1]?.originClientId).toBe(app.client_id);
    off();
  });
});

/**
 * An offline spell with 10,000 messages (about ten minutes of a busy home at ~17 messages/s), then
 * recovery: the server ends with the latest state of every entity and nothing else, and the outbox held one row per
 * entity, not one per message. Real daemon, real aedes, real mqtt.js devices, the real server behind a TCP proxy.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareSnapshots, gatewaySnapshot, serverSnapshot } from '../../src/daemon/convergence.js';
import { startProxy, type TcpProxy } from '../helpers/proxy.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { fastSync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

const DEVICES = 200;
const MESSAGES = 10_000;
const CLIENTS = 4;
const HOME = 'home-offline';

describe('offline spell', () => {
  const serverDir = mkdtempSync(join(tmpdir(), 'ib-offline-server-'));
  let server: TestServer | undefined;
  let proxy: TcpProxy | undefined;
  let gateway: TestGateway | undefined;
  afterAll(async () => {
    await gateway?.close();
    await proxy?.close();
    await server?.close();
    rmSync(serverDir, { recursive: true, force: true });
  });

  it('buffers 10,000 messages offline and converges to the latest state of every entity after recovery', async () => {
    server = await startTestServer({}, { dataDir: serverDir });
    const creds = await server.addClient(HOME);
    proxy = await startProxy({ target: server.url });
    gateway = await startTestGateway({
      serverUrl: proxy.url,
      clientId: creds.client_id,
      clientSecret: creds.client_secret,
      // 200 devices from one host in a few seconds: a whole house being paired, above the default 100 a minute.
      tune: (c) => fastSync({ ...c, ingest: { ...c.ingest, deviceLimits: { newPerMinute: 1000, total: 5000 } } }),
    });
    const gw = gateway;
    const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => gw.connect(`offline-dev-${i}`)));
    const status = () => gw.daemon.status();

    // Online: every device announces itself and a first state.
    for (let d = 0; d < DEVICES; d += 1) {
      const c = clients[d % CLIENTS]!;
      await c.publishAsync(`devices/dev-${d}/meta`, JSON.stringify({ name: `Device ${d}`, type: d % 10 === 0 ? 'plug' : 'light', room: `Room ${d % 7}` }), { qos: 1, retain: true });
      await c.publishAsync(`devices/dev-${d}/state`, JSON.stringify({ value: -1 }), { qos: 1 });
    }
    await waitFor(() => status().pending === 0 && status().scheduler?.mode === 'online', 20_000, 'the first sync');

    // The server goes away.
    const oldUrl = server.url;
    await server.close();
    server = undefined;
    proxy.setTarget(oldUrl);
    proxy.dropAll();
    const latest = new Map<string, number>();
    let sent = 0;
    await Promise.all(
      clients.map(async (c, ci) => {
        // Device (i·7919 mod 200) is a bijection of i mod 200, and 200 ≡ 0 (mod 4): each device is published by one
        // client only, in order, so the highest i per device is the last state it reported.
        // Pipelined 100 at a time, as a busy broker connection is; every message is PUBACKed before counting.
        for (let start = ci; start < MESSAGES; start += CLIENTS * 100) {
          const window: Promise<void>[] = [];
          for (let i = start; i < Math.min(MESSAGES, start + CLIENTS * 100); i += CLIENTS) {
            const d = (i * 7919) % DEVICES;
            window.push(
              c.publishAsync(`devices/dev-${d}/state`, JSON.stringify({ value: i, on: i % 2 === 0 }), { qos: 1 }).then(() => {
                latest.set(`dev-${d}`, Math.max(latest.get(`dev-${d}`) ?? -1, i));
                sent += 1;
              }),
            );
          }
          await Promise.all(window);
        }
      }),
    );
    expect(sent).toBe(MESSAGES);
    await waitFor(() => status().scheduler?.mode === 'offline', 20_000, 'offline mode');
    // One pending change per entity (the outbox), however many messages arrived.
    expect(status().pending).toBe(DEVICES);

    // The server comes back (same database, new port); the gateway recovers by itself.
    server = await startTestServer({}, { dataDir: serverDir });
    proxy.setTarget(server.url);
    await waitFor(() => status().pending === 0 && status().scheduler?.mode === 'online', 30_000, 'recovery and drain');

    const states = new Map(
      (await server.server.entities(HOME))
        .filter((e) => e.entity_type === 'entity_state' && !e.deleted)
        .map((e) => [e.entity_id, (e.data.state as { value: number }).value]),
    );
    expect(states.size).toBe(DEVICES);
    for (const [device, value] of latest) expect(states.get(device), device).toBe(value);
    const report = compareSnapshots(gatewaySnapshot(gw.daemon.store!), serverSnapshot(await server.server.entities(HOME)));
    expect(report).toMatchObject({ missingOnServer: [], extraOnServer: [], different: [], converged: true });
  }, 120_000);
});

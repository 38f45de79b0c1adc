/**
 * Three gateways and one app client of the same home edit the same entities concurrently; when the
 * writing stops, every gateway and the server hold one and the same state (last-write-wins, the server arbitrates).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { compareSnapshots, gatewaySnapshot, serverSnapshot } from '../../src/daemon/convergence.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { RELAXED, sleep } from './harness.js';

const HOME = 'home-writers';
const SHARED = ['s-0', 's-1', 's-2', 's-3'];

describe('many writers', () => {
  let ts: TestServer | undefined;
  const gateways: TestGateway[] = [];
  let app: AppClient | undefined;
  afterAll(async () => {
    await app?.close();
    for (const g of gateways) await g.close();
    await ts?.close();
  });

  it('three gateways and an app editing the same entities converge to one state', async () => {
    const server = await startTestServer(RELAXED);
    ts = server;
    for (let i = 0; i < 3; i += 1) {
      const creds = await server.addClient(HOME);
      gateways.push(await startTestGateway({ serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret }));
    }
    const appClient = await connectApp(server.url, await server.addClient(HOME));
    app = appClient;
    const devices = await Promise.all(gateways.map((g, i) => g.connect(`writer-${i}`)));
    let writing = true;
    let writes = 0;
    const writers = [
      ...devices.map(async (d, i) => {
        for (let n = 1; writing; n += 1) {
          const id = SHARED[n % SHARED.length] ?? 's-0';
          await d.publishAsync(`devices/${id}/state`, JSON.stringify({ level: n, by: `gw-${i}` }), { qos: 1 });
          writes += 1;
          await sleep(15 + i * 7);
        }
      }),
      (async () => {
        for (let n = 1; writing; n += 1) {
          await appClient.setState(SHARED[n % SHARED.length] ?? 's-0', { level: n, by: 'app' });
          writes += 1;
          await sleep(40);
        }
      })(),
    ];
    await sleep(3000);
    writing = false;
    await Promise.all(writers);
    expect(writes).toBeGreaterThan(100);

    const reports = async (): Promise<ReturnType<typeof compareSnapshots>[]> => {
      const onServer = serverSnapshot(await server.server.entities(HOME));
      return gateways.map((g) => {
        const store = g.daemon.store;
        if (store === undefined) throw new Error('gateway stopped');
        return compareSnapshots(gatewaySnapshot(store), onServer);
      });
    };
    await waitFor(async () => (await reports()).every((r) => r.converged), 20_000, 'every gateway equal to the server').catch(() => undefined);
    const final = await reports();
    for (const r of final) expect(r).toMatchObject({ converged: true, missingOnServer: [], extraOnServer: [], different: [] });
    const states = (await server.server.entities(HOME)).filter((e) => SHARED.includes(e.entity_id));
    expect(states).toHaveLength(SHARED.length);
  }, 40_000);
});

/**
 * Network chaos between gateway and server (latency, bandwidth cap, reset mid-request and mid-response,
 * black hole, server restart) while devices publish. Afterwards the gateway and the server converge, every PUBACKed
 * state is on the server, and no pushed change was applied twice.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AckLog } from '../../src/soak/oracle.js';
import { DeviceFleet } from '../../src/soak/devices.js';
import { fastSync, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startProxy, type TcpProxy } from '../helpers/proxy.js';
import { restartableServer, sleep, tempDir, verdict, waitConverged, within, type RestartableServer } from './harness.js';

const HOME = 'home-net';

describe('network chaos', () => {
  const dir = tempDir('ib-chaos-net-');
  let server: RestartableServer | undefined;
  let proxy: TcpProxy | undefined;
  let gw: TestGateway | undefined;
  afterAll(async () => {
    await gw?.close();
    await proxy?.close();
    await server?.close();
    dir.remove();
  });

  it('converges with every PUBACKed state on the server and nothing applied twice', async () => {
    server = await restartableServer(dir.path);
    const creds = await server.current.addClient(HOME);
    proxy = await startProxy({ target: server.current.url });
    // Short request timeouts so a black hole costs a second, not fifteen.
    gw = await startTestGateway({
      serverUrl: proxy.url,
      clientId: creds.client_id,
      clientSecret: creds.client_secret,
      tune: (c) => fastSync({ ...c, server: { ...c.server, requestTimeoutMs: 1000, connectTimeoutMs: 1000 } }),
    });
    const ack = new AckLog();
    const fleet = new DeviceFleet({ url: () => gw?.mqttUrl ?? '', devices: 6, ack, intervalMs: 30, prefix: 'net' });
    fleet.start();
    const p = proxy;
    const log: string[] = [];
    const phase = async (name: string, ms: number, on: () => void, off: () => void): Promise<void> => {
      on();
      await sleep(ms);
      off();
      log.push(name);
    };
    await phase('latency 250 ms', 1500, () => p.setLatency(250), () => p.setLatency(0));
    await phase('bandwidth 4 KB/s', 1500, () => p.setBandwidth(4096), () => p.setBandwidth(0));
    await within(p.cutRequestTo('/api/v1/sync/push'), 10_000, 'a push cut mid-request');
    await within(p.cutResponseTo('/api/v1/sync/push'), 10_000, 'a push cut mid-response');
    await within(p.cutResponseTo('/api/v1/sync/request'), 10_000, 'a pull cut mid-response');
    await phase('black hole', 2000, () => p.blackHole(true), () => {
      p.blackHole(false);
      p.dropAll();
    });
    const restarted = await server.restart({ abrupt: true, downMs: 500 });
    p.setTarget(restarted.url);
    p.dropAll();
    await sleep(1000);
    await fleet.stop();
    expect(p.stats.cut).toBeGreaterThanOrEqual(3);

    const store = gw.daemon.store;
    if (store === undefined) throw new Error('daemon not running');
    const result = await waitConverged(() => verdict(store, restarted, HOME, ack), 20_000);
    expect(result.convergence).toMatchObject({ converged: true, missingOnServer: [], different: [] });
    expect(result.loss.details).toEqual([]);
    expect(result.loss.lost).toBe(0);
    expect(ack.count).toBeGreaterThan(50);
    expect(result.maxApplications).toBe(1);
    expect(log).toHaveLength(3);
  }, 60_000);
});

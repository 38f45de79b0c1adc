/**
 * Load, CI variant: 200 MQTT clients publishing QoS 1 for 15 s at a sustained rate into the gateway (a real
 * child process) while it syncs: no acknowledged state lost, resident memory flat after warm-up. The minute-long
 * run is `npm run soak -- --minutes 1 --devices 200` (with faults on top).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { AckLog, serverCounters } from '../../src/soak/oracle.js';
import { startGatewayProcess, type GatewayProcess } from '../../src/soak/daemon.js';
import { DeviceFleet } from '../../src/soak/devices.js';
import { freePort } from '../../src/soak/runner.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { waitFor } from '../helpers/gateway.js';
import { RELAXED, sleep, tempDir } from './harness.js';

const HOME = 'home-load';
const CLIENTS = 200;
const SECONDS = 15;

describe('load', () => {
  const dir = tempDir('ib-chaos-load-');
  let ts: TestServer | undefined;
  let gw: GatewayProcess | undefined;
  afterAll(async () => {
    await gw?.stop();
    await ts?.close();
    dir.remove();
  });

  it(`${CLIENTS} clients publishing for ${SECONDS} s while syncs run: nothing lost, memory flat`, async () => {
    const server = await startTestServer(RELAXED);
    ts = server;
    const creds = await server.addClient(HOME);
    const mqttPort = await freePort();
    gw = await startGatewayProcess({ dataDir: join(dir.path, 'gw'), mqttPort, serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret });
    const ack = new AckLog();
    const fleet = new DeviceFleet({ url: () => `mqtt://127.0.0.1:${mqttPort}`, devices: CLIENTS, ack, intervalMs: 250, prefix: 'load' });
    const started = Date.now();
    fleet.start();
    const rss: number[] = [];
    for (let s = 1; s <= SECONDS; s += 1) {
      await sleep(1000);
      rss.push(gw.rssMb() ?? 0);
    }
    await fleet.stop();
    const seconds = (Date.now() - started) / 1000;
    await waitFor(() => ack.missingFrom(serverCounters(server.dataDir, HOME)).lost === 0, 30_000, 'every acknowledged state on the server').catch(() => undefined);
    const loss = ack.missingFrom(serverCounters(server.dataDir, HOME));
    const warm = rss[4] ?? 0;
    const peakAfterWarm = Math.max(...rss.slice(4));
    console.log(`load: ${CLIENTS} clients, ${ack.count} acknowledged in ${seconds.toFixed(1)} s (${Math.round(ack.count / seconds)}/s), RSS MB ${rss.join(' ')}`);
    expect(loss.details).toEqual([]);
    expect(ack.count / seconds).toBeGreaterThan(100); // sustained, not a trickle
    expect(new Set([...serverCounters(server.dataDir, HOME).keys()]).size).toBe(CLIENTS);
    expect(peakAfterWarm - warm).toBeLessThan(40); // flat: no growth with the message count after warm-up
  }, 90_000);
});

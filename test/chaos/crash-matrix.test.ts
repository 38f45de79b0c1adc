/**
 * kill -9 of the gateway (a real child process) in each phase of a sync — after the request, during a
 * paged delta apply, after the push is sent (its response withheld at the proxy), after the result arrives but before
 * it is committed, before the ack — and a server crash mid-push (before and after it commits). Every case restarts
 * and converges with nothing lost and nothing applied twice. Phases are hit deterministically with
 * INBETWEENIES_FAULT (src/sync/fault-points.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { AckLog } from '../../src/soak/oracle.js';
import { openStoreReader, storePath } from '../../src/store/index.js';
import { startGatewayProcess, type GatewayProcess } from '../../src/soak/daemon.js';
import { DeviceFleet } from '../../src/soak/devices.js';
import { freePort } from '../../src/soak/runner.js';
import { connectApp } from '../helpers/app-client.js';
import { startProxy } from '../helpers/proxy.js';
import { restartableServer, sleep, tempDir, verdict, waitConverged, within, type Verdict } from './harness.js';

const HOME = 'home-crash';
const PUSH = '/api/v1/sync/push';
const dirs: Array<{ remove(): void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

type Kill = { kind: 'fault'; phase: string } | { kind: 'push-sent' } | { kind: 'server'; hold: 'request' | 'response' };

async function runCase(kill: Kill): Promise<{ result: Verdict; ack: AckLog; lines: string[] }> {
  const dir = tempDir('ib-crash-');
  dirs.push(dir);
  // pageSize 3 + 8 app entities: the first pull has several pages, so "during delta apply" has a boundary to hit.
  const server = await restartableServer(join(dir.path, 'server'), { pageSize: 3 });
  const creds = await server.current.addClient(HOME);
  const app = await connectApp(server.current.url, await server.current.addClient(HOME));
  for (let i = 0; i < 8; i += 1) await app.setState(`app-${i}`, { counter: i });
  await app.close();
  const proxy = await startProxy({ target: server.current.url });
  const lines: string[] = [];
  const gwDir = join(dir.path, 'gw');
  const opts = { dataDir: gwDir, mqttPort: await freePort(), serverUrl: proxy.url, clientId: creds.client_id, clientSecret: creds.client_secret, onLine: (l: string) => lines.push(l) };
  let gw: GatewayProcess | undefined;
  try {
    // 1. Server unreachable: devices' states are PUBACKed into the store and wait in the outbox.
    proxy.blackHole(true);
    gw = await startGatewayProcess(opts);
    const ack = new AckLog();
    const fleet = new DeviceFleet({ url: () => `mqtt://127.0.0.1:${opts.mqttPort}`, devices: 5, ack, intervalMs: 5, prefix: 'crash' });
    fleet.start();
    await sleep(1000);
    await fleet.stop();
    await gw.kill9();
    proxy.blackHole(false);
    proxy.dropAll();
    // 2. The crash.
    if (kill.kind === 'fault') {
      gw = await startGatewayProcess({ ...opts, fault: kill.phase });
      const exit = await within(gw.exited, 20_000, `the gateway to reach ${kill.phase}`);
      expect(exit.signal).toBe('SIGKILL');
      expect(lines.some((l) => l.includes('fault point reached') && l.includes(kill.phase))).toBe(true);
      gw = await startGatewayProcess(opts);
    } else if (kill.kind === 'push-sent') {
      const hold = proxy.holdResponseTo(PUSH);
      gw = await startGatewayProcess(opts);
      await within(hold.held, 20_000, 'the push response');
      await gw.kill9(); // the server applied the push; the gateway never saw the result
      gw = await startGatewayProcess(opts);
    } else {
      const hold = kill.hold === 'request' ? proxy.holdRequestTo(PUSH) : proxy.holdResponseTo(PUSH);
      gw = await startGatewayProcess(opts);
      await within(hold.held, 20_000, `the push ${kill.hold}`);
      const restarted = await server.restart({ abrupt: true, downMs: 300 });
      proxy.setTarget(restarted.url);
      hold.release();
      proxy.dropAll();
    }
    // 3. Convergence, read from the gateway's file while it runs.
    const reader = openStoreReader(storePath(gwDir));
    try {
      const result = await waitConverged(() => verdict(reader, server.current, HOME, ack), 30_000);
      return { result, ack, lines };
    } finally {
      reader.close();
    }
  } finally {
    await gw?.kill9();
    await proxy.close();
    await server.close();
  }
}

const CASES: Array<[string, Kill]> = [
  ['gateway after the sync request', { kind: 'fault', phase: 'after_request' }],
  ['gateway during a paged delta apply', { kind: 'fault', phase: 'during_delta_apply' }],
  ['gateway after the push is sent', { kind: 'push-sent' }],
  ['gateway after the push result arrives, before it is committed', { kind: 'fault', phase: 'after_push_result' }],
  ['gateway before the ack', { kind: 'fault', phase: 'before_ack' }],
  ['server mid-push, before it commits', { kind: 'server', hold: 'request' }],
  ['server mid-push, after it commits, before it answers', { kind: 'server', hold: 'response' }],
];

describe('crash matrix', () => {
  it.concurrent.each(CASES)('kill -9 of the %s: restarts and converges, nothing lost or applied twice', async (_name, kill) => {
    const { result, ack, lines } = await runCase(kill);
    expect(ack.count).toBeGreaterThanOrEqual(10);
    expect(result.loss.details, lines.slice(-20).join('\n')).toEqual([]);
    expect(result.convergence).toMatchObject({ converged: true, missingOnServer: [], extraOnServer: [], different: [] });
    expect(result.maxApplications).toBe(1);
  }, 60_000);
});

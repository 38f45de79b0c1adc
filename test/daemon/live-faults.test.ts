/**
 * Live sync when things go wrong, through the whole daemon with its polls 5 minutes apart: the server restarts while
 * a wait is held, the connection turns into a black hole, a man in the middle tampers with or replays held answers,
 * and a held answer computed before a push arrives after the push's result.
 */
import { request as httpRequest, createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { compareSnapshots, gatewaySnapshot, serverSnapshot } from '../../src/daemon/convergence.js';
import { startChaosProxy, type ChaosProxy } from '../../src/soak/chaos-proxy.js';
import { restartableServer, tempDir, type RestartableServer } from '../chaos/harness.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';
import { waitFor } from '../helpers/gateway.js';
import { startProxy, type TcpProxy } from '../helpers/proxy.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { addDevice, HOME, startLiveHome, timeUntil, untilHeld, type LiveHome } from './live-harness.js';

describe('live sync under faults', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('server restarts while a wait is held (graceful, then abrupt): the gateway re-opens and the next app change arrives', async () => {
    const dir = tempDir('ib-live-restart-');
    const rs: RestartableServer = await restartableServer(dir.path, { hmac: { required: true } });
    const proxy: TcpProxy = await startProxy({ target: rs.current.url });
    const home = await startLiveHome({ server: () => rs.current, gatewayUrl: () => proxy.url });
    const appCreds = await rs.current.addClient(HOME);
    cleanups.push(() => dir.remove(), () => rs.close(), () => proxy.close(), () => home.close());
    await addDevice(home, 'light-1', 'light', { state: 'ON' });
    await untilHeld(home);

    // Graceful: the server answers the held wait with reason "shutdown" — a reconnect, not a failure.
    const graceful = await rs.restart();
    proxy.setTarget(graceful.url);
    await untilHeld(home);
    expect(home.status().live.reconnects).toBeGreaterThanOrEqual(1);
    expect(home.status().consecutiveFailures).toBe(0);
    await expectAppChangeArrives(home, await connectApp(graceful.url, appCreds), { state: 'OFF' }, cleanups);

    // Abrupt: every connection dropped; the held wait fails, the seed's backoff retries, live waits resume. The app
    // change above ended a round: wait for the next one to be held, so the restart drops a held wait.
    await untilHeld(home);
    const { rounds, reconnects } = home.status().live;
    const abrupt = await rs.restart({ abrupt: true });
    proxy.setTarget(abrupt.url);
    proxy.dropAll();
    await waitFor(() => home.status().live.rounds > rounds, 15_000, 'a new live wait after the abrupt restart');
    await untilHeld(home, 15_000);
    expect(home.status().live.reconnects).toBe(reconnects + 1);
    await expectAppChangeArrives(home, await connectApp(abrupt.url, appCreds), { state: 'ON' }, cleanups);
  }, 40_000);

  it('a black-holed connection is noticed within the wait plus the margin, re-opened, and nothing is lost', async () => {
    const server = await startTestServerForFaults();
    const chaos: ChaosProxy = await startChaosProxy(server.url);
    cleanups.push(() => server.close(), () => chaos.close());
    // Waits of 2 s with a 1 s margin: a dead connection is noticed within 3 s.
    const home = await startLiveHome({
      server: () => server,
      gatewayUrl: () => chaos.url,
      sync: { liveWaitSeconds: 2, liveTimeoutMarginSeconds: 1 },
      tune: (c) => ({ ...c, server: { ...c.server, requestTimeoutMs: 1500, connectTimeoutMs: 1000 } }),
    });
    cleanups.push(() => home.close());
    await addDevice(home, 'light-1', 'light', { state: 'ON' });
    await addDevice(home, 'temp-1', 'sensor', { temperature: 20 });
    await untilHeld(home);
    chaos.fault = { kind: 'blackhole' };
    const holeAt = performance.now();
    // Both sides change while the route is dead: the app on the server (the held wait's answer is swallowed)...
    await home.app.setState('light-1', { state: 'OFF' });
    const detectedMs = await timeUntil(() => home.status().lastError?.code === 'TIMEOUT', 8_000, 'the dead wait noticed');
    expect(detectedMs).toBeLessThan(2_000 + 1_000 + 2_000);
    expect(home.status().mode).not.toBe('online');
    // ...and, once the dead wait has been noticed (nothing else was in flight), a device on the gateway.
    await home.device.publishAsync('devices/temp-1/state', JSON.stringify({ temperature: 23 }), { qos: 1 });
    chaos.fault = { kind: 'clean' };
    await waitFor(() => home.commands.some((c) => c.topic === 'devices/light-1/set' && c.body.state === 'OFF'), 15_000, 'the app change at the device');
    await waitFor(() => home.serverState('temp-1')?.temperature === 23, 15_000, 'the device change on the server');
    await untilHeld(home, 15_000);
    expect(home.status().live.reconnects).toBeGreaterThanOrEqual(1);
    expect(performance.now() - holeAt).toBeGreaterThan(detectedMs);
    const store = home.gateway.daemon.store;
    if (store === undefined) throw new Error('daemon not running');
    await waitFor(() => home.gateway.daemon.status().pending === 0, 5_000, 'the outbox drained');
    expect(compareSnapshots(gatewaySnapshot(store), serverSnapshot(await server.server.entities(HOME)))).toMatchObject({ converged: true });
  }, 40_000);

  it('signature and replay rules hold for live requests and their answers', async () => {
    const server = await startTestServerForFaults();
    const mitm = await startMitm(server.url);
    cleanups.push(() => server.close(), () => mitm.close());
    const home = await startLiveHome({ server: () => server, gatewayUrl: () => mitm.url, sync: { maxRetries: 5 } });
    cleanups.push(() => home.close());
    await addDevice(home, 'light-1', 'light', { state: 'ON' });
    await untilHeld(home);
    expect(mitm.live.length).toBeGreaterThanOrEqual(1);

    // A held request replayed to the server is refused like any replay: its nonce was recorded when it arrived.
    const recorded = mitm.live[0];
    if (recorded === undefined) throw new Error('no live request seen');
    const replay = await rawPost(server.url, recorded.path, recorded.headers, recorded.body);
    expect(replay.status).toBe(401);
    expect(JSON.parse(replay.body.toString()).code).toBe('BAD_SIGNATURE');

    // A tampered held answer (a state changed in transit, the signature kept) is refused and applies nothing.
    mitm.tamperNextLiveAnswer((text) => text.replace('"state":"OFF"', '"state":"EVIL"'));
    await home.app.setState('light-1', { state: 'OFF' });
    await waitFor(() => home.status().lastError?.code === 'BAD_SIGNATURE', 5_000, 'the tampered answer refused');
    // The retry (a full cycle, then live waits) brings the real change; the tampered value never reached the device.
    await waitFor(() => home.commands.some((c) => c.topic === 'devices/light-1/set' && c.body.state === 'OFF'), 10_000, 'the real change');
    expect(home.commands.some((c) => c.body.state === 'EVIL')).toBe(false);
    await untilHeld(home, 10_000);

    // An earlier held answer, signed for another request's nonce, replayed as the answer to the next one: refused.
    const errorsBefore = home.status().lastError?.at ?? 0;
    mitm.replayNextLiveAnswer();
    await home.app.setState('light-1', { state: 'ON' });
    await waitFor(() => (home.status().lastError?.at ?? 0) > errorsBefore && home.status().lastError?.code === 'BAD_SIGNATURE', 5_000, 'the replayed answer refused');
    await waitFor(() => home.commands.some((c) => c.topic === 'devices/light-1/set' && c.body.state === 'ON'), 10_000, 'the real change');
  }, 40_000);

  it('a held answer computed before a push but arriving after its result does not undo it', async () => {
    const server = await startTestServerForFaults();
    const proxy = await startProxy({ target: server.url });
    cleanups.push(() => server.close(), () => proxy.close());
    const home = await startLiveHome({ server: () => server, gatewayUrl: () => proxy.url, sync: { uplinkWindowMs: 0 } });
    cleanups.push(() => home.close());
    await addDevice(home, 'lamp-1', 'light', { brightness: 10 });
    await addDevice(home, 'other', 'sensor', { v: 0 });
    await untilHeld(home);
    // Versions more than the seed's 1 s conflict window apart: device 10 < app 50 < device 80, decided by timestamp.
    await new Promise((r) => setTimeout(r, 1_100));
    // The next live request's answer will be held by the proxy; wake the current wait so the next one is opened.
    const held = proxy.holdResponseTo('"wait"');
    await home.app.setState('other', { v: 1 });
    await waitFor(() => home.commands.some((c) => c.topic === 'devices/other/set'), 5_000, 'the first wake');
    await untilHeld(home);
    // The app sets brightness 50: the server answers the held wait with it (withheld in transit)...
    await home.app.setState('lamp-1', { brightness: 50 });
    await held.held;
    await new Promise((r) => setTimeout(r, 1_100));
    // ...then the device reports brightness 80, pushed on another connection and applied by the server (newer).
    await home.device.publishAsync('devices/lamp-1/state', JSON.stringify({ brightness: 80 }), { qos: 1 });
    await waitFor(() => home.serverState('lamp-1')?.brightness === 80 && home.gateway.daemon.status().pending === 0, 5_000, 'the push applied');
    held.release(); // the stale answer arrives now
    await untilHeld(home);
    await new Promise((r) => setTimeout(r, 300));
    const local = home.gateway.daemon.store?.entities.get('entity_state', 'lamp-1')?.data.state;
    expect(local).toEqual({ brightness: 80 });
    expect(home.commands.some((c) => c.topic === 'devices/lamp-1/set')).toBe(false);
    expect(home.serverState('lamp-1')).toEqual({ brightness: 80 });
  }, 30_000);
});

function startTestServerForFaults(): Promise<TestServer> {
  return startTestServer({ hmac: { required: true } });
}

async function expectAppChangeArrives(home: LiveHome, app: AppClient, state: Record<string, unknown>, cleanups: Array<() => Promise<void> | void>): Promise<void> {
  cleanups.push(() => app.close());
  const value = state.state;
  await app.setState('light-1', state);
  const ms = await timeUntil(() => home.commands.some((c) => c.topic === 'devices/light-1/set' && c.body.state === value), 2_000, `light-1 ${String(value)} at the device`);
  expect(ms).toBeLessThan(2_000);
}

interface RecordedRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface Mitm {
  readonly url: string;
  /** The live requests seen (a sync_request with `wait`), with the answers the server gave. */
  readonly live: Array<RecordedRequest & { answer?: { status: number; headers: IncomingHttpHeaders; body: Buffer } }>;
  tamperNextLiveAnswer(edit: (text: string) => string): void;
  replayNextLiveAnswer(): void;
  close(): Promise<void>;
}

/** An HTTP man in the middle: forwards everything, records live requests, and can alter the next held answer. */
async function startMitm(target: string): Promise<Mitm> {
  const live: Mitm['live'] = [];
  let next: ((answer: { status: number; headers: IncomingHttpHeaders; body: Buffer }) => { headers: IncomingHttpHeaders; body: Buffer }) | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const isLive = body.includes('"wait"');
      const entry = { path: req.url ?? '/', headers: { ...req.headers }, body };
      if (isLive) live.push(entry);
      void rawRequest(target, req.method ?? 'GET', entry.path, req.headers, body).then((answer) => {
        let out = { headers: answer.headers, body: answer.body };
        if (isLive) {
          const alter = next;
          next = undefined;
          if (alter) out = alter(answer);
          Object.assign(entry, { answer });
        }
        const headers = { ...out.headers, 'content-length': String(out.body.length) };
        delete headers['transfer-encoding'];
        res.writeHead(answer.status, headers);
        res.end(out.body);
      }, () => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    live,
    tamperNextLiveAnswer: (edit) => {
      next = (answer) => ({ headers: answer.headers, body: Buffer.from(edit(answer.body.toString('utf8'))) });
    },
    replayNextLiveAnswer: () => {
      const old = live.find((e) => e.answer?.status === 200)?.answer;
      if (old === undefined) throw new Error('no earlier live answer to replay');
      next = () => ({ headers: old.headers, body: old.body });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function rawRequest(target: string, method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  const url = new URL(target);
  const forwarded = { ...headers, host: url.host };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: forwarded }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function rawPost(target: string, path: string, headers: IncomingHttpHeaders, body: Buffer): Promise<{ status: number; body: Buffer }> {
  return rawRequest(target, 'POST', path, headers, body);
}

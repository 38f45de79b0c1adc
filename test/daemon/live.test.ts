/**
 * Live sync through the whole daemon (docs/architecture.md §Scheduler: live first): the real server, the real gateway
 * with its polls 5 minutes apart, a phone app and a device as real MQTT clients. Only the live path (a held live wait,
 * the uplink's pushes) can meet these bounds.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/gateway.js';
import { addDevice, HOME, startLiveHome, timeUntil, untilHeld, type LiveHome } from './live-harness.js';

describe('live sync through the daemon', () => {
  let home: LiveHome | undefined;
  afterEach(async () => {
    await home?.close();
    home = undefined;
  });

  it('an app change reaches devices/<id>/set in under 2 s; no poll runs while the wait is held', async () => {
    home = await startLiveHome();
    await addDevice(home, 'light-1', 'light', { state: 'ON', brightness: 200 });
    await untilHeld(home);
    const cyclesBefore = home.status().lastReport;
    const h = home;
    const pushedAt = performance.now();
    await h.app.setState('light-1', { state: 'OFF', brightness: 200 });
    const ms = await timeUntil(() => h.commands.some((c) => c.topic === 'devices/light-1/set' && c.body.state === 'OFF'), 2_000, 'the command on devices/light-1/set');
    expect(h.commands.find((c) => c.topic === 'devices/light-1/set')?.body).toEqual({ state: 'OFF' });
    expect(performance.now() - pushedAt).toBeLessThan(2_000);
    expect(ms).toBeLessThan(2_000);
    const st = h.status();
    expect(st.via).toBe('live');
    expect(st.live.wakes).toBeGreaterThanOrEqual(1);
    expect(st.nextSyncAt).toBeNull(); // no poll timer while the wait is held
    expect(st.lastReport).toBe(cyclesBefore); // and no full cycle ran for it
    // Not echoed upstream: nothing pending, the server keeps the app's version.
    await untilHeld(h);
    expect(h.gateway.daemon.status().pending).toBe(0);
  });

  it('a critical device state reaches the server in under 2 s, on a connection of its own beside the held wait', async () => {
    // A long uplink window: an ordinary change would wait 10 s, a critical one is pushed after its debounce.
    home = await startLiveHome({ sync: { uplinkWindowMs: 10_000 } });
    await addDevice(home, 'lock-1', 'lock', { lock_state: 'locked' });
    await untilHeld(home);
    const h = home;
    const heldBefore = h.status().live.heldSince;
    const published = performance.now();
    await h.device.publishAsync('devices/lock-1/state', JSON.stringify({ lock_state: 'unlocked' }), { qos: 1 });
    const ms = await timeUntil(() => h.serverState('lock-1')?.lock_state === 'unlocked', 2_000, 'lock-1 unlocked on the server');
    expect(ms).toBeLessThan(2_000);
    expect(performance.now() - published).toBeLessThan(2_000);
    // The same wait is still held: the push did not wait for it, nor end it.
    expect(h.status().live.heldSince).toBe(heldBefore);
    expect(h.status().live.pushes).toBeGreaterThanOrEqual(1);
  });

  it('an ordinary device state is pushed within the uplink window, not before its end', async () => {
    home = await startLiveHome({ sync: { uplinkWindowMs: 3_000 } });
    await addDevice(home, 'temp-1', 'sensor', { temperature: 20 });
    await untilHeld(home);
    const h = home;
    const published = performance.now(); // before the commit that starts the window
    await h.device.publishAsync('devices/temp-1/state', JSON.stringify({ temperature: 21 }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(h.serverState('temp-1')?.temperature).toBe(20); // still inside the window
    await timeUntil(() => h.serverState('temp-1')?.temperature === 21, 4_000, 'temp-1 on the server');
    const ms = performance.now() - published;
    expect(ms).toBeGreaterThanOrEqual(2_980);
    expect(ms).toBeLessThan(3_000 + 1_500);
  });

  it("is not woken by its own push: pushes while a wait is held wake nothing", async () => {
    home = await startLiveHome({ sync: { uplinkWindowMs: 0 } });
    await addDevice(home, 'plug-1', 'switch', { power: 'off' });
    await untilHeld(home);
    const h = home;
    const wakesBefore = h.status().live.wakes;
    const serverWakeups = h.server.server.liveStats().wakeups;
    for (const power of ['on', 'off', 'on']) {
      await h.device.publishAsync('devices/plug-1/state', JSON.stringify({ power }), { qos: 1 });
      await timeUntil(() => h.serverState('plug-1')?.power === power, 2_000, `plug-1 ${power} on the server`);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(h.status().live.wakes).toBe(wakesBefore);
    expect(h.server.server.liveStats().wakeups).toBe(serverWakeups);
    expect(h.status().live.pushes).toBeGreaterThanOrEqual(3);
  });

  it('status, /healthz and /metrics say the sync is live and how long the wait has been held', async () => {
    home = await startLiveHome();
    await untilHeld(home);
    await new Promise((r) => setTimeout(r, 1_200));
    const url = home.gateway.daemon.httpUrl;
    if (url === null) throw new Error('no control listener');
    const status = (await (await fetch(`${url}/status`)).json()) as { scheduler: { via: string; live: { heldForMs: number; pollingReason: unknown } } };
    expect(status.scheduler.via).toBe('live');
    expect(status.scheduler.live.heldForMs).toBeGreaterThanOrEqual(1_000);
    expect(status.scheduler.live.pollingReason).toBeNull();
    const health = (await (await fetch(`${url}/healthz`)).json()) as { checks: { sync: { ok: boolean; detail: string } } };
    expect(health.checks.sync.ok).toBe(true);
    expect(health.checks.sync.detail).toMatch(/^live, held for \d+ s$/);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^inbetweenies_gateway_sync_live 1$/m);
    const held = /^inbetweenies_gateway_sync_live_held_seconds ([\d.]+)$/m.exec(metrics);
    expect(Number(held?.[1])).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^inbetweenies_gateway_sync_live_wakes_total \d+$/m);
    expect(metrics).toMatch(/^inbetweenies_gateway_sync_live_reconnects_total 0$/m);
  });

  it('held answers are clock samples by their unheld part only: the offset estimate stays put', async () => {
    // Waits of 0.3 s: a dozen held answers in 5 s; taken whole, each would put the offset some 150 ms off.
    home = await startLiveHome({ serverConfig: { live: { maxWaitSeconds: 0.3 } } });
    await untilHeld(home);
    const h = home;
    await waitFor(() => h.status().live.rounds >= 15, 10_000, '15 live rounds');
    const offset = h.gateway.daemon.store?.syncState.get('clock_offset_ms');
    expect(offset).toBeDefined();
    expect(Math.abs(offset ?? Infinity)).toBeLessThan(50);
  });

  it('stop() aborts the held wait at once: the daemon does not wait out the 25 s', async () => {
    home = await startLiveHome();
    await untilHeld(home);
    const h = home;
    home = undefined;
    const started = performance.now();
    await h.gateway.close();
    expect(performance.now() - started).toBeLessThan(3_000);
    await waitFor(() => h.server.server.liveStats().held === 0, 2_000, 'the server to see the wait released');
    await h.app.close();
    await h.server.close();
  });

  it('a server without live waits is polled: changes still flow both ways, and status says why', async () => {
    home = await startLiveHome({ serverConfig: { live: { enabled: false } }, sync: { minIntervalSeconds: 0.5, maxIntervalSeconds: 1 } });
    await addDevice(home, 'light-2', 'light', { state: 'ON' });
    await addDevice(home, 'temp-2', 'sensor', { temperature: 18 });
    const h = home;
    await waitFor(() => h.status().live.pollingReason === 'unsupported', 5_000, 'polling for lack of live waits');
    expect(h.status().via).toBe('polling');
    await h.app.setState('light-2', { state: 'OFF' });
    await waitFor(() => h.commands.some((c) => c.topic === 'devices/light-2/set' && c.body.state === 'OFF'), 5_000, 'the command by polling');
    // Another device: a report within 1 s of the app's edit of the same state could lose the seed's tie-break.
    await h.device.publishAsync('devices/temp-2/state', JSON.stringify({ temperature: 19 }), { qos: 1 });
    await waitFor(() => h.serverState('temp-2')?.temperature === 19, 5_000, 'the device change on the server');
    const url = h.gateway.daemon.httpUrl ?? '';
    const health = (await (await fetch(`${url}/healthz`)).json()) as { checks: { sync: { detail: string } } };
    expect(health.checks.sync.detail).toMatch(/^polling every \d+ s \(the server holds no live waits\)$/);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^inbetweenies_gateway_sync_live 0$/m);
  });

  it('held waits never trip the rate limit: an app changing 40 times a second and a flapping lock, at the default limit', async () => {
    home = await startLiveHome({ serverConfig: { rateLimit: { ratePerSecond: 20, burst: 60 } } });
    await addDevice(home, 'lock-2', 'lock', { lock_state: 'locked' });
    await addDevice(home, 'lamp-9', 'light', { brightness: 0 });
    await untilHeld(home);
    const h = home;
    const until = performance.now() + 3_000;
    let n = 0;
    const appWrites = (async () => {
      while (performance.now() < until) {
        n += 1;
        await h.app.setState('lamp-9', { brightness: n });
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const lockFlaps = (async () => {
      let i = 0;
      while (performance.now() < until) {
        i += 1;
        await h.device.publishAsync('devices/lock-2/state', JSON.stringify({ lock_state: i % 2 ? 'unlocked' : 'locked' }), { qos: 1 });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all([appWrites, lockFlaps]);
    await waitFor(() => h.commands.some((c) => c.body.brightness === n), 5_000, 'the last app change at the device');
    await waitFor(() => h.gateway.daemon.status().pending === 0, 5_000, 'the outbox drained');
    const st = h.status();
    expect(st.lastError?.code ?? null).toBeNull();
    expect(st.mode).toBe('online');
    expect(st.via).toBe('live');
    expect(st.live.wakes).toBeGreaterThan(10);
    const metrics = await (await fetch(`${h.gateway.daemon.httpUrl ?? ''}/metrics`)).text();
    expect(metrics).toMatch(/sync_failures_total\{code="RATE_LIMITED"\} 0\n/); // every labelled counter is there from the start
    expect((await h.server.server.entities(HOME)).length).toBeGreaterThan(0);
  }, 20_000);
});

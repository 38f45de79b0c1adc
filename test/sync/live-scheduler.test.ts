/**
 * The scheduler's live-first rules with a scripted runner and fake timers: one held wait at a time and no poll beside
 * it, how each way a wait ends is handled, the fallback to polling, the uplink window and debounce, backoff from a
 * dead wait, and stop() aborting the held request at once.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayError, SyncHttpError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { SyncScheduler, type CycleReport, type LiveRoundReport, type LiveSupport, type PushOnlyReport, type SyncRunner } from '../../src/sync/index.js';
import type { LiveEnd } from '../../src/sync/live.js';

const cycleReport: CycleReport = { pulled: 0, pushed: 0, applied: 0, conflicts: 0, rejected: 0, pages: 1, bytesSent: 0, bytesReceived: 0, durationMs: 1, serverTime: '', fullResync: false, commands: 0, acked: false };

function round(end: LiveEnd, pending = 0): LiveRoundReport {
  return { end, waitedMs: 0, pulled: end === 'change' ? 1 : 0, pushed: 0, applied: 0, conflicts: 0, commands: 0, serverTime: '', fullResync: false, acked: false, durationMs: 1, pending };
}

interface HeldRound {
  readonly waitSeconds: number;
  answer(end: LiveEnd, pending?: number): void;
  fail(err: Error): void;
  readonly aborted: () => boolean;
}

/** A runner whose live rounds stay held until the test answers them; a round aborts when its signal does. */
class ScriptedRunner implements SyncRunner {
  support: LiveSupport | undefined = { maxWaitSeconds: 25 };
  cycles: number[] = [];
  pushes: number[] = [];
  probes = 0;
  liveProbes = 0;
  held: HeldRound[] = [];
  cycleFails: Error | undefined;
  async runCycle(): Promise<CycleReport> {
    this.cycles.push(Date.now());
    if (this.cycleFails) throw this.cycleFails;
    return cycleReport;
  }
  async probe(): Promise<void> {
    this.probes += 1;
  }
  async probeLive(): Promise<LiveSupport | undefined> {
    this.liveProbes += 1;
    return this.support;
  }
  liveRound(options: { readonly waitSeconds: number; readonly signal?: AbortSignal }): Promise<LiveRoundReport> {
    return new Promise((resolve, reject) => {
      let aborted = false;
      options.signal?.addEventListener('abort', () => {
        aborted = true;
        reject(new GatewayError('TRANSPORT', 'aborted'));
      });
      this.held.push({ waitSeconds: options.waitSeconds, answer: (end, pending) => resolve(round(end, pending)), fail: reject, aborted: () => aborted });
    });
  }
  async pushPending(): Promise<PushOnlyReport> {
    this.pushes.push(Date.now());
    return { pushed: 1, applied: 1, conflicts: 0, rejected: 0, batches: 1, pulled: 0, durationMs: 1 };
  }
  /** The wait held now (the last opened, if not answered). */
  get current(): HeldRound {
    const h = this.held[this.held.length - 1];
    if (h === undefined) throw new Error('no live round opened');
    return h;
  }
}

describe('scheduler: live first', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function start(runner: ScriptedRunner, extra: Partial<ConstructorParameters<typeof SyncScheduler>[0]> = {}): SyncScheduler {
    const s = new SyncScheduler({ runner, logger: silentLogger(), random: () => 0.5, ...extra });
    s.start();
    return s;
  }

  it('after the first cycle holds one wait at a time, re-opens at once, and never polls beside it', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner);
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.cycles).toHaveLength(1);
    expect(runner.held).toHaveLength(1);
    expect(runner.current.waitSeconds).toBe(25);
    expect(s.status()).toMatchObject({ via: 'live', nextSyncAt: null });
    await vi.advanceTimersByTimeAsync(20 * 60_000); // far past any poll interval
    expect(runner.cycles).toHaveLength(1);
    runner.current.answer('timeout');
    await vi.advanceTimersByTimeAsync(100);
    runner.current.answer('change');
    await vi.advanceTimersByTimeAsync(100);
    expect(runner.held).toHaveLength(3);
    expect(s.status().live).toMatchObject({ rounds: 3, wakes: 1, reconnects: 0, lastEnd: 'change' });
    expect(runner.cycles).toHaveLength(1);
    await s.stop();
  });

  it('opens at most one wait per minRequestSpacingMs when answers come back at once', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner, { minRequestSpacingMs: 100 });
    await vi.advanceTimersByTimeAsync(0);
    runner.current.answer('change'); // answered at once, at the time it was opened
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.held).toHaveLength(1); // the next one waits for its spacing
    await vi.advanceTimersByTimeAsync(100);
    expect(runner.held).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(30);
    runner.current.answer('change');
    await vi.advanceTimersByTimeAsync(69);
    expect(runner.held).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(runner.held).toHaveLength(3);
    // A wait answered after more than the spacing is followed at once.
    await vi.advanceTimersByTimeAsync(5_000);
    runner.current.answer('timeout');
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.held).toHaveLength(4);
    await s.stop();
  });

  it('a shutdown answer reconnects after a pause, asking for the capability again — not a failure', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner, { shutdownPauseMs: 500 });
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.liveProbes).toBe(1);
    runner.current.answer('shutdown');
    await vi.advanceTimersByTimeAsync(499);
    expect(runner.held).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runner.liveProbes).toBe(2);
    expect(runner.held).toHaveLength(2);
    expect(s.status()).toMatchObject({ mode: 'online', consecutiveFailures: 0, lastError: null });
    expect(s.status().live.reconnects).toBe(1);
    await s.stop();
  });

  it('a wait that dies (TIMEOUT) backs off with the seed delays, retries a full cycle, then holds again', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner);
    await vi.advanceTimersByTimeAsync(0);
    runner.current.fail(new GatewayError('TIMEOUT', 'headers timeout'));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.status()).toMatchObject({ mode: 'backoff', consecutiveFailures: 1, via: 'polling' });
    expect(s.status().lastError?.code).toBe('TIMEOUT');
    runner.cycleFails = new GatewayError('TRANSPORT', 'ECONNREFUSED');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runner.cycles).toHaveLength(2);
    expect(s.status().consecutiveFailures).toBe(2);
    runner.cycleFails = undefined;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(runner.cycles).toHaveLength(3);
    expect(s.status()).toMatchObject({ mode: 'online', via: 'live', consecutiveFailures: 0 });
    expect(runner.held).toHaveLength(2);
    expect(s.status().live.reconnects).toBe(1);
    await s.stop();
  });

  it('a server without live waits is polled adaptively and asked again after liveRecheckMs', async () => {
    const runner = new ScriptedRunner();
    runner.support = undefined;
    const s = start(runner, { liveRecheckMs: 60_000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(s.status()).toMatchObject({ via: 'polling' });
    expect(s.status().live.pollingReason).toBe('unsupported');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runner.cycles).toHaveLength(2);
    runner.support = { maxWaitSeconds: 10 };
    await vi.advanceTimersByTimeAsync(60_000);
    expect(s.status().via).toBe('live');
    expect(runner.current.waitSeconds).toBe(10); // the server's cap
    await s.stop();
  });

  it('a refused wait (SERVER_BUSY) polls until the Retry-After has passed, then holds again; no failure counted', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner);
    await vi.advanceTimersByTimeAsync(0);
    runner.current.fail(new SyncHttpError('SERVER_BUSY', 'busy', 503, 5));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.status()).toMatchObject({ mode: 'online', via: 'polling', consecutiveFailures: 0 });
    expect(s.status().live.pollingReason).toBe('refused');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runner.cycles).toHaveLength(2);
    expect(s.status().via).toBe('live');
    await s.stop();
  });

  it('pushes a critical change after the debounce and an ordinary one within the window, beside the held wait', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner, { criticalDebounceMs: 20, uplinkWindowMs: 1_000, minRequestSpacingMs: 100 });
    await vi.advanceTimersByTimeAsync(0);
    const t0 = Date.now();
    s.notifyLocalChange(false);
    await vi.advanceTimersByTimeAsync(500);
    s.notifyLocalChange(false); // rides along: still one push at t0 + 1 s
    await vi.advanceTimersByTimeAsync(499);
    expect(runner.pushes).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runner.pushes.map((t) => t - t0)).toEqual([1_000]);
    s.notifyLocalChange(true); // critical: after the debounce, but not closer than 100 ms to the last push
    await vi.advanceTimersByTimeAsync(100);
    expect(runner.pushes.map((t) => t - t0)).toEqual([1_000, 1_100]);
    await vi.advanceTimersByTimeAsync(1_000);
    s.notifyLocalChange(true);
    await vi.advanceTimersByTimeAsync(20);
    expect(runner.pushes.map((t) => t - t0)).toEqual([1_000, 1_100, 2_120]);
    expect(runner.held).toHaveLength(1); // the same wait held all along
    expect(runner.current.aborted()).toBe(false);
    await s.stop();
  });

  it('a wake with local changes pending pushes them at once', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner, { uplinkWindowMs: 10_000 });
    await vi.advanceTimersByTimeAsync(0);
    s.notifyLocalChange(false);
    await vi.advanceTimersByTimeAsync(50);
    runner.current.answer('change', 1);
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.pushes).toHaveLength(1);
    await s.stop();
  });

  it('stop() aborts the held wait at once', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner);
    await vi.advanceTimersByTimeAsync(0);
    const held = runner.current;
    await s.stop();
    expect(held.aborted()).toBe(true);
    expect(s.status()).toMatchObject({ mode: 'stopped', via: 'polling' });
  });

  it('syncNow gives up the held wait for a full cycle and holds again after it', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner);
    await vi.advanceTimersByTimeAsync(0);
    const first = runner.current;
    await s.syncNow();
    expect(first.aborted()).toBe(true);
    expect(runner.cycles).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.held).toHaveLength(2);
    expect(s.status().via).toBe('live');
    await s.stop();
  });

  it('live: false polls, and pushes local changes within the window', async () => {
    const runner = new ScriptedRunner();
    const s = start(runner, { live: false, uplinkWindowMs: 1_000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.liveProbes).toBe(0);
    expect(s.status().live).toMatchObject({ enabled: false, pollingReason: 'disabled' });
    s.notifyLocalChange(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runner.pushes).toHaveLength(1);
    await s.stop();
  });
});

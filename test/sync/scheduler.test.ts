import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayError, SyncHttpError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { isOffline, nextPollInterval, retryDelayMs, SyncScheduler, type CycleReport, type SyncRunner } from '../../src/sync/index.js';

function report(moved = 0): CycleReport {
  return { pulled: moved, pushed: 0, applied: 0, conflicts: 0, rejected: 0, pages: 1, bytesSent: 0, bytesReceived: 0, durationMs: 1, serverTime: '', fullResync: false, commands: 0, acked: true };
}

/** A runner whose behaviour the test switches: up (cycles succeed) or down (everything fails with TRANSPORT). */
class FakeRunner implements SyncRunner {
  up = true;
  moved = 0;
  cycles: number[] = [];
  probes: number[] = [];
  failWith: Error | undefined;
  cycleMs = 0;
  destroy: (() => Promise<void>) | undefined;
  async runCycle(): Promise<CycleReport> {
    this.cycles.push(Date.now());
    if (this.cycleMs > 0) await new Promise((r) => setTimeout(r, this.cycleMs));
    if (this.failWith) throw this.failWith;
    if (!this.up) throw new GatewayError('TRANSPORT', 'connect ECONNREFUSED');
    return report(this.moved);
  }
  async probe(): Promise<void> {
    this.probes.push(Date.now());
    if (!this.up) throw new GatewayError('TRANSPORT', 'connect ECONNREFUSED');
  }
}

describe('backoff rules (pure)', () => {
  it('retries after 1, 2, 4, 8, 16 s with ±20 % jitter, then offline after 5 retries', () => {
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n, () => 0.5))).toEqual([1000, 2000, 4000, 8000, 16000]);
    expect(retryDelayMs(6, () => 0.5)).toBe(30000);
    expect(retryDelayMs(1, () => 0)).toBe(800);
    expect(retryDelayMs(1, () => 0.999999)).toBe(1200);
    for (let i = 0; i < 200; i += 1) {
      const d = retryDelayMs(3, Math.random);
      expect(d).toBeGreaterThanOrEqual(3200);
      expect(d).toBeLessThanOrEqual(4800);
    }
    expect(isOffline(5)).toBe(false);
    expect(isOffline(6)).toBe(true);
  });
  it('adapts the polling interval: min after activity, doubling to max when idle', () => {
    let interval = 5000;
    const seen: number[] = [];
    for (let i = 0; i < 8; i += 1) seen.push((interval = nextPollInterval(interval, false)));
    expect(seen).toEqual([10000, 20000, 40000, 80000, 160000, 300000, 300000, 300000]);
    expect(nextPollInterval(300000, true)).toBe(5000);
  });
});

describe('scheduler (fake timers)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('goes online → backoff → offline, probes, and recovers by itself', async () => {
    const runner = new FakeRunner();
    runner.up = false;
    const s = new SyncScheduler({ runner, logger: silentLogger(), random: () => 0.5, probeIntervalMs: 30_000 });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.cycles).toHaveLength(1);
    expect(s.status().mode).toBe('backoff');
    expect(s.status()).toMatchObject({ via: 'polling', live: { enabled: false, pollingReason: 'not_online' } });
    const start = runner.cycles[0]!;
    await vi.advanceTimersByTimeAsync(1000 + 2000 + 4000 + 8000 + 16000);
    expect(runner.cycles.map((t) => t - start)).toEqual([0, 1000, 3000, 7000, 15000, 31000]);
    expect(s.status().mode).toBe('offline');
    expect(s.status().consecutiveFailures).toBe(6);
    // offline: probes every 30 s, no cycle while the probe fails
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runner.probes).toHaveLength(2);
    expect(runner.cycles).toHaveLength(6);
    // a local change while offline does not bring a sync forward (keeps buffering)
    s.notifyLocalChange(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(runner.cycles).toHaveLength(6);
    runner.up = true;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(runner.probes).toHaveLength(3);
    expect(runner.cycles).toHaveLength(7);
    expect(s.status().mode).toBe('online');
    expect(s.status().consecutiveFailures).toBe(0);
    await s.stop();
  });

  it('polls adaptively and syncs critical changes at once (debounced), normal ones within the min interval', async () => {
    const runner = new FakeRunner();
    const s = new SyncScheduler({ runner, logger: silentLogger(), criticalDebounceMs: 250 });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.cycles).toHaveLength(1);
    expect(s.status().intervalMs).toBe(10_000); // idle: doubled from 5 s
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runner.cycles).toHaveLength(2);
    expect(s.status().intervalMs).toBe(20_000);
    // critical: three changes within the debounce → one cycle 250 ms after the first
    s.notifyLocalChange(true);
    await vi.advanceTimersByTimeAsync(100);
    s.notifyLocalChange(true);
    s.notifyLocalChange(true);
    await vi.advanceTimersByTimeAsync(149);
    expect(runner.cycles).toHaveLength(2);
    runner.moved = 3;
    await vi.advanceTimersByTimeAsync(1);
    expect(runner.cycles).toHaveLength(3);
    expect(s.status().intervalMs).toBe(5_000); // activity: back to the minimum
    runner.moved = 0;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(s.status().intervalMs).toBe(10_000);
    // normal change: next sync within the min interval instead of 10 s
    const before = runner.cycles.length;
    s.notifyLocalChange(false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runner.cycles).toHaveLength(before + 1);
    await s.stop();
  });

  it('waits Retry-After when rate limited, and never runs two cycles at once', async () => {
    const runner = new FakeRunner();
    runner.failWith = new SyncHttpError('RATE_LIMITED', 'slow down', 429, 7);
    const s = new SyncScheduler({ runner, logger: silentLogger(), random: () => 0.5 });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runner.cycles).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(6_999);
    expect(runner.cycles).toHaveLength(1);
    runner.failWith = undefined;
    runner.cycleMs = 1_000;
    await vi.advanceTimersByTimeAsync(1);
    expect(runner.cycles).toHaveLength(2);
    // a syncNow during the cycle in flight waits for it, then runs its own
    const now = s.syncNow();
    await vi.advanceTimersByTimeAsync(500);
    expect(runner.cycles).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1_500);
    await expect(now).resolves.toMatchObject({ pages: 1 });
    expect(runner.cycles).toHaveLength(3);
    expect(s.status().mode).toBe('online');
    await s.stop();
  });

  it('stop() waits for a cycle in flight up to its bound, then abandons it', async () => {
    const runner = new FakeRunner();
    runner.cycleMs = 60_000;
    let destroyed = 0;
    runner.destroy = async () => {
      destroyed += 1;
    };
    const s = new SyncScheduler({ runner, logger: silentLogger(), stopTimeoutMs: 2_000 });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    const stopping = s.stop();
    await vi.advanceTimersByTimeAsync(2_000);
    await stopping;
    expect(destroyed).toBe(1);
    expect(s.status().mode).toBe('stopped');
  });

  it('validates its options with expected vs given', () => {
    expect(() => new SyncScheduler({ runner: new FakeRunner(), logger: silentLogger(), minIntervalMs: -1 })).toThrow(/minIntervalMs/);
    expect(() => new SyncScheduler({ runner: new FakeRunner(), logger: silentLogger(), jitter: 'x' as unknown as number })).toThrow(/jitter.*expected number/);
  });
});

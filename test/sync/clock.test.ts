import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { openStore, type GatewayStore } from '../../src/store/index.js';
import { bestSample, offsetOf, ServerClock } from '../../src/sync/index.js';

const dirs: string[] = [];
const stores: GatewayStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function open(path: string): GatewayStore {
  const s = openStore({ path, logger: silentLogger() });
  stores.push(s);
  return s;
}

function store(): GatewayStore {
  const dir = mkdtempSync(join(tmpdir(), 'ib-clock-'));
  dirs.push(dir);
  return open(join(dir, 'gateway.db'));
}

describe('server-corrected clock', () => {
  it('estimates offset = server_time − midpoint(send, receive)', () => {
    expect(offsetOf(10_050, 1_000, 1_100)).toEqual({ offsetMs: 9_000, rttMs: 100, atMs: 1_100 });
    const samples = [offsetOf(5_000, 0, 400), offsetOf(5_020, 10, 30), offsetOf(5_200, 50, 350)];
    expect(bestSample(samples)?.rttMs).toBe(20);
  });

  it('takes a big step at once, prefers low-RTT samples, smooths small moves, persists the offset', async () => {
    const db = store();
    let local = 1_700_000_000_000; // local clock one hour behind the server
    const serverAt = (ms: number): number => (ms + 3_600_000) * 1000;
    const clock = new ServerClock({ now: () => local, state: db.syncState, logger: silentLogger() });
    expect(clock.known).toBe(false);
    clock.observe(serverAt(local + 5), local, local + 10); // rtt 10, true offset 3_600_000
    expect(clock.offsetMs).toBe(3_600_000);
    expect(Math.abs(clock.nowMicros() - serverAt(local))).toBeLessThan(1000);
    // a noisy high-RTT sample (server answered late in a 400 ms round trip) barely moves it: the low-RTT one wins
    local += 1_000;
    clock.observe(serverAt(local + 390), local, local + 400); // its offset reads 3_600_190
    expect(Math.abs(clock.offsetMs - 3_600_000)).toBeLessThan(1);
    // a better sample 30 ms off is smoothed in, not jumped to
    local += 1_000;
    clock.observe(serverAt(local + 2) + 30_000, local, local + 4);
    expect(clock.offsetMs).toBeGreaterThan(3_600_000);
    expect(clock.offsetMs).toBeLessThan(3_600_030);
    // a fresh clock on the same store file starts from the persisted offset
    await db.settled(); // every write so far is in the file
    const again = new ServerClock({ now: () => local, state: open(db.path).syncState, logger: silentLogger() });
    expect(again.known).toBe(true);
    expect(Math.abs(again.offsetMs - clock.offsetMs)).toBeLessThan(10); // persisted when it moves ≥ 10 ms
    // the local clock is stepped (NTP): the new offset is taken at once
    clock.observe(serverAt(local + 2) - 3_600_000 * 1000, local, local + 4);
    expect(Math.abs(clock.offsetMs)).toBeLessThan(10);
  });
});

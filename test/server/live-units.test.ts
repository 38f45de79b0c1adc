/** The parts of live waits that are plain data structures: the shared timer wheel and the in-process notifier. */
import { describe, expect, it } from 'vitest';
import { InProcessChangeNotifier, TimerWheel, type ChangeEvent, type Expirable } from '../../src/server/live/index.js';

function item(log: string[], name: string): Expirable {
  return { wheelTick: undefined, expire: () => log.push(name) };
}

describe('TimerWheel', () => {
  it('expires each item once, not before its deadline, within one tick after it', () => {
    let now = 1_000;
    const wheel = new TimerWheel({ tickMs: 100, now: () => now });
    const log: string[] = [];
    wheel.add(item(log, 'a'), 250);
    wheel.add(item(log, 'b'), 1_000);
    const c = item(log, 'c');
    wheel.add(c, 500);
    wheel.remove(c);
    now = 1_240;
    wheel.advance();
    expect(log).toEqual([]);
    now = 1_300;
    wheel.advance();
    expect(log).toEqual(['a']);
    now = 5_000;
    wheel.advance();
    wheel.advance();
    expect(log).toEqual(['a', 'b']);
    expect(wheel.size).toBe(0);
  });

  it('re-adding an item moves its deadline; clear() drops everything unexpired', () => {
    let now = 0;
    const wheel = new TimerWheel({ tickMs: 10, now: () => now });
    const log: string[] = [];
    const a = item(log, 'a');
    wheel.add(a, 20);
    wheel.add(a, 100);
    now = 50;
    wheel.advance();
    expect(log).toEqual([]);
    wheel.add(item(log, 'b'), 10);
    wheel.clear();
    now = 1_000;
    wheel.advance();
    expect(log).toEqual([]);
    expect(wheel.size).toBe(0);
  });

  it('runs on its own interval with the real clock, and needs no timer while empty', async () => {
    const wheel = new TimerWheel({ tickMs: 5 });
    const fired = new Promise<number>((resolve) => {
      const started = performance.now();
      wheel.add({ wheelTick: undefined, expire: () => resolve(performance.now() - started) }, 30);
    });
    expect(await fired).toBeGreaterThanOrEqual(25);
    expect(wheel.size).toBe(0);
  });

  it('refuses a tick that is not a positive integer', () => {
    expect(() => new TimerWheel({ tickMs: 0 })).toThrow(/tickMs: expected an integer >= 1, got 0/);
  });
});

describe('InProcessChangeNotifier', () => {
  it('calls the listeners of the event home only, until they unsubscribe', () => {
    const notifier = new InProcessChangeNotifier();
    const seen: string[] = [];
    const off = notifier.subscribe('h1', (e: ChangeEvent) => seen.push(`1:${e.originClientId}`));
    notifier.subscribe('h2', (e: ChangeEvent) => seen.push(`2:${e.originClientId}`));
    notifier.publish({ homeId: 'h1', originClientId: 'a', seq: 1 });
    off();
    notifier.publish({ homeId: 'h1', originClientId: 'b', seq: 2 });
    notifier.publish({ homeId: 'h2', originClientId: 'c', seq: 3 });
    expect(seen).toEqual(['1:a', '2:c']);
    expect(notifier.homeCount()).toBe(1);
  });

  it('keeps several listeners of one home, each until it unsubscribes', () => {
    const notifier = new InProcessChangeNotifier();
    const seen: string[] = [];
    const offs = ['x', 'y', 'z'].map((name) => notifier.subscribe('h', () => seen.push(name)));
    notifier.publish({ homeId: 'h', originClientId: 'a', seq: 1 });
    offs[1]?.();
    notifier.publish({ homeId: 'h', originClientId: 'a', seq: 2 });
    offs[0]?.();
    offs[2]?.();
    notifier.publish({ homeId: 'h', originClientId: 'a', seq: 3 });
    expect(seen).toEqual(['x', 'y', 'z', 'x', 'z']);
    expect(notifier.homeCount()).toBe(0);
  });
});

/** Cron schedules of the daemon's jobs (src/util/cron.ts): parsing, next runs (also across DST), the timer. */
import { describe, expect, it } from 'vitest';
import { CronTimer, nextRun, parseCron, zonedTime, type CronSchedule } from '../../src/util/cron.js';

const berlin = zonedTime('Europe/Berlin');
const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function schedule(expression: string): CronSchedule {
  const parsed = parseCron(expression);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.schedule;
}

describe('cron expressions', () => {
  it('reads numbers, names, ranges, steps and lists; refuses the rest, saying where', () => {
    expect(schedule('30 3 * * 0').fields[5]).toEqual(new Set([0]));
    expect(schedule('0 0 * * 7').fields[5]).toEqual(new Set([0]));
    expect(schedule('*/15 * * * *').fields[1]).toEqual(new Set([0, 15, 30, 45]));
    expect(schedule('0 9-17/4 * * mon-fri').fields[2]).toEqual(new Set([9, 13, 17]));
    expect(schedule('0 0 1 jan,Jul *').fields[4]).toEqual(new Set([1, 7]));
    expect(schedule('5/20 * * * * *').fields[0]).toEqual(new Set([5, 25, 45]));
    expect(parseCron('every sunday')).toEqual({ ok: false, problem: 'expected 5 fields (minute hour day month weekday) or 6 (with seconds first), got 2' });
    expect(parseCron('61 * * * *')).toMatchObject({ ok: false, problem: 'minute: 61-61 is outside 0-59' });
    expect(parseCron('* * * foo *')).toMatchObject({ ok: false, problem: 'month: cannot read "foo"' });
    expect(parseCron('*/0 * * * *')).toMatchObject({ ok: false, problem: 'minute: step must be at least 1' });
    expect(parseCron('0 0 L * *').ok).toBe(false);
  });

  it('finds the next run strictly after a time, in a time zone, across DST', () => {
    // Sunday 03:30 in Berlin, asked on Wednesday 2026-03-25: the next Sunday is 29 March, the night clocks go forward
    // (02:00 → 03:00 CEST), so 03:30 local is 01:30 UTC.
    expect(iso(nextRun(schedule('30 3 * * 0'), at('2026-03-25T12:00:00Z'), berlin))).toBe('2026-03-29T01:30:00.000Z');
    // 02:30 does not exist that night in Berlin: the next 02:30 is a week later
    expect(iso(nextRun(schedule('30 2 * * 0'), at('2026-03-28T12:00:00Z'), berlin))).toBe('2026-04-05T00:30:00.000Z');
    expect(iso(nextRun(schedule('*/15 * * * *'), at('2026-06-01T10:07:59Z'), berlin))).toBe('2026-06-01T10:15:00.000Z');
    expect(iso(nextRun(schedule('* * * * * *'), at('2026-06-01T10:07:59.400Z'), berlin))).toBe('2026-06-01T10:08:00.000Z');
    expect(iso(nextRun(schedule('0 0 30 2 *'), at('2026-01-01T00:00:00Z'), berlin))).toBeNull(); // 30 February
  });

  it('fires on its schedule and stops', async () => {
    let fired = 0;
    const timer = new CronTimer({ schedule: schedule('* * * * * *'), run: () => (fired += 1) });
    timer.start();
    const next = timer.nextRun();
    expect(next).not.toBeNull();
    expect((next ?? 0) - Date.now()).toBeLessThanOrEqual(1000);
    await new Promise((r) => setTimeout(r, 2300));
    timer.stop();
    expect(fired).toBeGreaterThanOrEqual(2);
    const after = fired;
    await new Promise((r) => setTimeout(r, 1100));
    expect(fired).toBe(after);
    expect(timer.nextRun()).toBeNull();
  });
});

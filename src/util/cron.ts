/**
 * Cron schedules for the daemon's jobs: `[second] minute hour day-of-month month day-of-week`, each field `*`, a
 * number, a name (jan–dec, sun–sat), a range `a-b`, a step `*∕n` or `a-b/n`, or a comma list of those; day-of-week
 * 0–7 (0 and 7 are Sunday). A time matches when every field matches (as node-cron, which the gateway used before).
 * Times are local, or in an IANA time zone when one is given — only then is Intl loaded (its time zone data costs
 * several MB of the daemon's memory, the reason this small module replaced node-cron).
 */

const FIELDS = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export interface CronSchedule {
  readonly expression: string;
  /** Allowed values per field: second, minute, hour, day of month, month (1–12), day of week (0–6). */
  readonly fields: readonly (ReadonlySet<number>)[];
}

export type CronParse = { readonly ok: true; readonly schedule: CronSchedule } | { readonly ok: false; readonly problem: string };

function nameValue(text: string, field: number): number | undefined {
  const lower = text.toLowerCase().slice(0, 3);
  const names = field === 4 ? MONTHS : field === 5 ? WEEKDAYS : undefined;
  const i = names?.indexOf(lower) ?? -1;
  if (i < 0 || !/^[a-z]+$/i.test(text)) return undefined;
  return field === 4 ? i + 1 : i;
}

function value(text: string, field: number): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  return nameValue(text, field);
}

/** One field's allowed values, or the problem. */
function parseField(text: string, field: number): Set<number> | string {
  const { name, min, max } = FIELDS[field] ?? FIELDS[0];
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:\/(\d+))?$/i.exec(part);
    if (!m) return `${name}: cannot read ${JSON.stringify(part)}`;
    const [range = '', stepText] = [m[1], m[2]];
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!(step >= 1)) return `${name}: step must be at least 1`;
    let lo: number = min;
    let hi: number = max;
    if (range !== '*') {
      const [a = '', b] = range.split('-');
      const from = value(a, field);
      const to = b === undefined ? (stepText === undefined ? from : max) : value(b, field);
      if (from === undefined || to === undefined) return `${name}: cannot read ${JSON.stringify(range)}`;
      lo = from;
      hi = to;
    }
    if (lo < min || hi > max || lo > hi) return `${name}: ${lo}-${hi} is outside ${min}-${max}`;
    for (let v = lo; v <= hi; v += step) out.add(field === 5 && v === 7 ? 0 : v);
  }
  return out;
}

export function parseCron(expression: string): CronParse {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    return { ok: false, problem: `expected 5 fields (minute hour day month weekday) or 6 (with seconds first), got ${parts.length}` };
  }
  const full = parts.length === 5 ? ['0', ...parts] : parts;
  const fields: Set<number>[] = [];
  for (let i = 0; i < 6; i += 1) {
    const parsed = parseField(full[i] ?? '', i);
    if (typeof parsed === 'string') return { ok: false, problem: parsed };
    fields.push(parsed);
  }
  return { ok: true, schedule: { expression, fields } };
}

/** Wall-clock parts of an instant: local, or in a time zone. */
export interface WallClock {
  parts(epochMs: number): { month: number; day: number; weekday: number; hour: number; minute: number; second: number };
}

export const LOCAL_TIME: WallClock = {
  parts(epochMs) {
    const d = new Date(epochMs);
    return { month: d.getMonth() + 1, day: d.getDate(), weekday: d.getDay(), hour: d.getHours(), minute: d.getMinutes(), second: d.getSeconds() };
  },
};

/** Wall clock in an IANA time zone (Intl); throws RangeError for an unknown zone. */
export function zonedTime(timeZone: string): WallClock {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    month: 'numeric',
    day: 'numeric',
    weekday: 'short',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  return {
    parts(epochMs) {
      const get = (type: string): string => format.formatToParts(epochMs).find((p) => p.type === type)?.value ?? '0';
      return {
        month: Number(get('month')),
        day: Number(get('day')),
        weekday: WEEKDAYS.indexOf(get('weekday').toLowerCase()),
        hour: Number(get('hour')) % 24,
        minute: Number(get('minute')),
        second: Number(get('second')),
      };
    },
  };
}

/**
 * The first matching whole second strictly after `afterMs`, within five years; null when there is none (such as
 * 30 February). Skips whole days, hours and minutes that cannot match, so it is quick for any schedule.
 */
export function nextRun(schedule: CronSchedule, afterMs: number, clock: WallClock = LOCAL_TIME): number | null {
  const [seconds, minutes, hours, days, months, weekdays] = schedule.fields;
  let t = Math.floor(afterMs / 1000) * 1000 + 1000;
  const limit = afterMs + 5 * 366 * 86_400_000;
  while (t <= limit) {
    const p = clock.parts(t);
    const intoDay = (p.hour * 3600 + p.minute * 60 + p.second) * 1000;
    if (!months?.has(p.month) || !days?.has(p.day) || !weekdays?.has(p.weekday)) t += 86_400_000 - intoDay;
    else if (!hours?.has(p.hour)) t += (3600 - p.minute * 60 - p.second) * 1000;
    else if (!minutes?.has(p.minute)) t += (60 - p.second) * 1000;
    else if (!seconds?.has(p.second)) t += 1000;
    else return t;
  }
  return null;
}

/** Calls `run` at every match of `schedule` from `start()` until `stop()`; never two timers at once. */
export class CronTimer {
  readonly #schedule: CronSchedule;
  readonly #clock: WallClock;
  readonly #run: () => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #next: number | null = null;

  constructor(options: { schedule: CronSchedule; run: () => void; clock?: WallClock; now?: () => number }) {
    this.#schedule = options.schedule;
    this.#clock = options.clock ?? LOCAL_TIME;
    this.#run = options.run;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    if (this.#timer === undefined) this.#arm(this.#now());
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#next = null;
  }

  /** When it fires next (epoch ms), null when stopped or never. */
  nextRun(): number | null {
    return this.#next;
  }

  #arm(fromMs: number): void {
    this.#next = nextRun(this.#schedule, fromMs, this.#clock);
    if (this.#next === null) return;
    const due = this.#next;
    // setTimeout holds at most 2^31-1 ms (~24.8 days): a longer wait is re-armed on the way.
    const wait = Math.min(Math.max(0, due - this.#now()), 2_147_483_647);
    this.#timer = setTimeout(() => this.#fire(due), wait);
    this.#timer.unref();
  }

  #fire(due: number): void {
    const now = this.#now();
    if (now < due) {
      this.#timer = setTimeout(() => this.#fire(due), Math.min(due - now, 2_147_483_647));
      this.#timer.unref();
      return;
    }
    this.#arm(Math.max(now, due));
    this.#run();
  }
}

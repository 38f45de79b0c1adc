/**
 * Timestamps on the wire (docs/protocol.md §Transport): emit UTC ISO-8601 with microseconds; accept `Z`, `±hh:mm` /
 * `±hhmm` offsets, and naive strings (read as UTC, as the original Python FunkyGibbon emits them).
 *
 * Internally every instant is an integer count of microseconds since the Unix epoch (fits a double exactly until
 * the year 2255), so ordering and the server's commit sequence never lose precision.
 */
export type Micros = number;

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** Parses an ISO-8601 timestamp to epoch microseconds; returns `undefined` when it is not one. */
export function parseTimestamp(text: string): Micros | undefined {
  const m = ISO_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '', zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const baseMs = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 31 Feb into March: reject dates that do not exist.
  if (new Date(baseMs).getUTCDate() !== day && second !== 60) return undefined;
  const micros = Number((frac + '000000').slice(0, 6));
  let offsetMinutes = 0;
  if (zone && zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = sign * (oh * 60 + om);
  }
  return (baseMs - offsetMinutes * 60_000) * 1000 + micros;
}

/** Formats epoch microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
export function formatTimestamp(us: Micros): string {
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // ...SS.mmmZ
  return `${iso.slice(0, 23)}${String(rest).padStart(3, '0')}Z`;
}

export function msToMicros(ms: number): Micros {
  return Math.round(ms * 1000);
}

export function microsToMs(us: Micros): number {
  return Math.floor(us / 1000);
}

export function nowMicros(clock: () => number = Date.now): Micros {
  return clock() * 1000;
}

/** The zone designator of an ISO-8601 timestamp: `Z`, `z` or `±hh[:mm]` at the end. */
const ZONED_RE = /(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * Whether `text` carries no zone (read as UTC). This project never emits one; the original Python FunkyGibbon and
 * Blowing-Off do (docs/protocol.md §Compatibility).
 */
export function isNaiveTimestamp(text: string): boolean {
  return !ZONED_RE.test(text.trim());
}

/** Formats epoch microseconds as naive UTC `YYYY-MM-DDTHH:MM:SS.ffffff`, for a peer that compares naive timestamps. */
export function formatNaiveTimestamp(us: Micros): string {
  return formatTimestamp(us).slice(0, -1);
}

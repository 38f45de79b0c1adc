/**
 * The text table of `devices`: one line per device, the state summarised as `attribute=value` pairs cut to the
 * terminal's width (a Shelly or Tasmota energy meter reports dozens of fields; `--json` has them all).
 */
import type { DeviceView } from '../store/device-queries.js';

/** Longest rendering of one nested value (an object or array) inside the state summary. */
const MAX_NESTED_CHARS = 24;
const MIN_STATE_WIDTH = 30;
const ID_MAX = 48;
const TEXT_MAX = 24;

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** One attribute's value: plain words as they are, other strings quoted, objects as short JSON. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:+-]{1,40}$/.test(value) ? value : cut(JSON.stringify(value), 32);
  if (typeof value === 'object' && value !== null) return cut(JSON.stringify(value), MAX_NESTED_CHARS);
  return String(value);
}

/** `state=ON brightness=200 power=12.5 … (+4)`: as many attributes as fit in `width` characters, then how many more. */
export function formatState(state: Readonly<Record<string, unknown>>, width: number): string {
  const parts = Object.entries(state).map(([name, value]) => `${name}=${formatValue(value)}`);
  let out = '';
  for (const [i, part] of parts.entries()) {
    const more = parts.length - i - 1;
    const tail = more > 0 ? ` … (+${more})` : '';
    const candidate = out === '' ? part : `${out} ${part}`;
    if (candidate.length + tail.length > width) return out === '' ? `${cut(part, Math.max(8, width - tail.length))}${tail}` : `${out} … (+${more + 1})`;
    out = candidate;
  }
  return out === '' ? '-' : out;
}

export interface DevicesTableOptions {
  /** Room names by room id. */
  readonly rooms: ReadonlyMap<string, string>;
  /** Total width to fit in (the terminal's columns); the state column takes what the others leave. */
  readonly columns: number;
}

/** The table: ID, NAME, TYPE, ROOM, SYNC, STATE. */
export function formatDevicesTable(devices: readonly DeviceView[], options: DevicesTableOptions): string {
  const rows = devices.map((d) => [
    d.id,
    cut(d.name ?? '-', TEXT_MAX),
    cut(d.type ?? '-', TEXT_MAX),
    cut(d.roomId === null ? '-' : (options.rooms.get(d.roomId) ?? d.roomId), TEXT_MAX),
    d.pending ? 'pending' : d.synced ? 'synced' : 'local',
  ]);
  const header = ['ID', 'NAME', 'TYPE', 'ROOM', 'SYNC'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(i === 0 ? ID_MAX : TEXT_MAX, (r[i] ?? '').length))));
  const fixed = widths.reduce((a, w) => a + w + 2, 0);
  const stateWidth = Math.max(MIN_STATE_WIDTH, options.columns - fixed);
  const line = (cells: readonly string[], state: string): string => `${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}  ${state}`;
  return [line(header, 'STATE'), ...rows.map((r, i) => line(r, formatState(devices[i]?.state ?? {}, stateWidth)))].join('\n');
}

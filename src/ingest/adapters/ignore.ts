/**
 * Per-adapter ignore lists (`ingest.adapters.<name>.ignoreAttributes`): attributes that change on every report without
 * meaning anything (link quality, uptime, Shelly's per-minute energy buckets) are dropped from an update before it
 * reaches the store, so on their own they cause no write and no sync. An entry is an attribute name or a dotted path
 * into a nested object (`aenergy.by_minute`); an attribute whose name itself has dots (`switch:0.aenergy`) matches
 * whole first. A nested object left empty is dropped too.
 */
import type { IngestAdapter, LocalUpdate } from '../adapter.js';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Removes `paths` from `attributes` (a new object; the input is not changed). */
function drop(attributes: Readonly<Record<string, unknown>>, paths: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (paths.includes(key)) continue;
    const nested = paths.filter((p) => p.startsWith(`${key}.`)).map((p) => p.slice(key.length + 1));
    if (nested.length === 0 || !isPlainObject(value)) {
      out[key] = value;
      continue;
    }
    const kept = drop(value, nested);
    if (Object.keys(kept).length > 0 || Object.keys(value).length === 0) out[key] = kept;
  }
  return out;
}

export interface IgnoreList {
  /** Whether the top-level attribute `name` is ignored as a whole. */
  has(name: string): boolean;
  /** The attributes without the ignored ones. */
  apply(attributes: Readonly<Record<string, unknown>>): Record<string, unknown>;
  readonly size: number;
}

export function ignoreList(paths: readonly string[]): IgnoreList {
  const list = [...new Set(paths.filter((p) => p.length > 0))];
  const whole = new Set(list);
  return {
    has: (name) => whole.has(name),
    apply: (attributes) => (list.length === 0 ? { ...attributes } : drop(attributes, list)),
    size: list.length,
  };
}

/**
 * The adapter with its state updates passed through `list` (for adapters that do not apply one themselves: Home
 * Assistant discovery, generic topics). A state update left empty is dropped.
 */
export function withIgnoreList(adapter: IngestAdapter, list: IgnoreList): IngestAdapter {
  if (list.size === 0) return adapter;
  return {
    ...adapter,
    parse(topic, payload) {
      const result = adapter.parse(topic, payload);
      if (result === undefined || !result.ok) return result;
      const updates = result.updates.flatMap((u): LocalUpdate[] => {
        if (u.kind !== 'state') return [u];
        const attributes = list.apply(u.attributes);
        return Object.keys(attributes).length === 0 ? [] : [{ ...u, attributes }];
      });
      return { ...result, updates };
    },
  };
}

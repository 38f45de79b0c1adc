/**
 * Attribute-level state (extension; docs/protocol.md §Attribute-level state). The seed resolves conflicts per whole
 * entity (§Last-Write-Wins Rules); for an `entity_state` this applies the same rules to each attribute of `state`:
 *   1. the later `updated_at` wins;
 *   2. within 1 s the higher `sync_id` wins;
 *   3. a delete of the entity beats attribute updates in its window (decided by the caller at entity level, with
 *      `latestVersion` as the entity's version);
 *   4. every lost attribute is reported, with both values.
 * Pure functions: the server's push applier and the tests call them; nothing here touches storage.
 *
 * A version of one attribute is `[t, s, q, o, c?]`: ordering time (µs, clamped), sync_id of the write, the server's
 * commit seq of the write, the client that wrote it, and the claimed time when it was clamped. An attribute that is
 * in the metadata but not in the state was removed (an attribute tombstone: a removal is a version like any value).
 */
import { resolveLastWriteWins, type DecisionReason, type Version } from './conflict.js';
import type { Micros } from './timestamps.js';

export interface AttrVersion {
  /** Ordering time, µs (the claimed time clamped to receive time + tolerance). */
  readonly t: Micros;
  /** sync_id of the write. */
  readonly s: string;
  /** Commit seq of the write (or of the last re-announcement, see `mergeAttributes`). */
  readonly q: Micros;
  /** Client that wrote it (null: unknown, e.g. a row written before attributes were tracked). */
  readonly o: string | null;
  /** Claimed time when it was clamped. */
  readonly c?: Micros;
}

export type AttrMeta = Record<string, AttrVersion>;

/** What a pushed entity_state writes, in attribute terms. */
export interface AttrWrite {
  /** Attributes set, with their values. */
  readonly set: Readonly<Record<string, unknown>>;
  /** Attributes removed. */
  readonly removed: readonly string[];
  readonly version: AttrVersion;
}

/** One attribute's decision, as reported (conflict entries, history). */
export interface AttrDecision {
  readonly name: string;
  readonly winner: 'server' | 'client';
  readonly reason: DecisionReason | 'new_attribute';
  /** Stored value before the decision; `present: false` when the attribute did not exist or was removed. */
  readonly server: { readonly present: boolean; readonly value?: unknown; readonly version: AttrVersion | undefined };
  readonly client: { readonly present: boolean; readonly value?: unknown };
}

export interface AttrMergeResult {
  readonly state: Record<string, unknown>;
  readonly meta: AttrMeta;
  /** Every attribute the write addressed whose value or version changed, in order. */
  readonly decisions: readonly AttrDecision[];
  /** True when at least one attribute of the write won (something is written). */
  readonly wrote: boolean;
}

const asVersion = (v: AttrVersion): Version => ({ updatedAt: v.t, syncId: v.s, deleted: false });

/** Deep equality of JSON values (attribute values come from JSON.parse). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(rb, k) && jsonEqual(ra[k], rb[k]));
}

/**
 * The write a whole state stands for: every attribute it carries is set, every attribute the stored state has and it
 * lacks is removed (a peer speaking only the seed sends whole states).
 */
export function wholeStateWrite(stored: Readonly<Record<string, unknown>>, state: Readonly<Record<string, unknown>>, version: AttrVersion): AttrWrite {
  return { set: state, removed: Object.keys(stored).filter((k) => !Object.hasOwn(state, k)), version };
}

/**
 * Merges `write` into the stored live state attribute by attribute. `fallback` is the version of attributes the
 * metadata does not know (a state written before attributes were tracked: the entity's own version). An attribute
 * the write loses is kept, and its version is re-announced with `write.version.q` so that the writer's next delta
 * carries the server's value (the writer believes its own).
 */
export function mergeAttributes(
  stored: { readonly state: Readonly<Record<string, unknown>>; readonly meta: AttrMeta; readonly fallback: AttrVersion },
  write: AttrWrite,
  windowUs?: Micros,
): AttrMergeResult {
  const state: Record<string, unknown> = { ...stored.state };
  const meta: AttrMeta = { ...stored.meta };
  const decisions: AttrDecision[] = [];
  let wrote = false;
  const names = [...Object.keys(write.set), ...write.removed.filter((n) => !Object.hasOwn(write.set, n))];
  for (const name of names) {
    const present = Object.hasOwn(stored.state, name);
    const known = meta[name] ?? (present ? stored.fallback : undefined);
    const clientPresent = Object.hasOwn(write.set, name);
    const client = clientPresent ? { present: true, value: write.set[name] } : { present: false };
    const server = present ? { present: true, value: stored.state[name], version: known } : { present: false, version: known };
    if (known === undefined) {
      if (!clientPresent) continue; // removing an attribute nobody ever had: nothing to do
      state[name] = write.set[name];
      meta[name] = write.version;
      decisions.push({ name, winner: 'client', reason: 'new_attribute', server, client });
      wrote = true;
      continue;
    }
    const decision = resolveLastWriteWins(asVersion(known), asVersion(write.version), windowUs);
    if (decision.reason === 'identical_version') continue; // the same write again
    if (decision.winner === 'client') {
      if (clientPresent) state[name] = write.set[name];
      else delete state[name];
      meta[name] = write.version;
      wrote = true;
      if (present !== clientPresent || (present && !jsonEqual(stored.state[name], write.set[name]))) {
        decisions.push({ name, winner: 'client', reason: decision.reason, server, client });
      }
    } else {
      if (present !== clientPresent || (present && !jsonEqual(stored.state[name], write.set[name]))) {
        meta[name] = { ...known, q: write.version.q };
        decisions.push({ name, winner: 'server', reason: decision.reason, server, client });
      }
    }
  }
  return { state, meta, decisions, wrote };
}

/** The latest attribute version (the entity's version for entity-level rules: delete priority, resurrection). */
export function latestVersion(meta: AttrMeta, fallback: AttrVersion): AttrVersion {
  let best = fallback;
  for (const v of Object.values(meta)) {
    if (resolveLastWriteWins(asVersion(best), asVersion(v)).winner === 'client') best = v;
  }
  return best;
}

/** Metadata for a state all of whose attributes come from one write (a creation, a resurrection). */
export function metaOfWrite(state: Readonly<Record<string, unknown>>, version: AttrVersion): AttrMeta {
  const meta: AttrMeta = {};
  for (const name of Object.keys(state)) meta[name] = version;
  return meta;
}

/** Stored form `{"name":[t,s,q,o,c?]}` (compact: one row's metadata is read on every push of that entity). */
export function encodeAttrMeta(meta: AttrMeta): string {
  const out: Record<string, unknown[]> = {};
  for (const [name, v] of Object.entries(meta)) out[name] = v.c === undefined ? [v.t, v.s, v.q, v.o] : [v.t, v.s, v.q, v.o, v.c];
  return JSON.stringify(out);
}

/** Reads the stored form back; an entry that is not one is dropped (the attribute then falls back to the entity's version). */
export function decodeAttrMeta(text: string | null): AttrMeta {
  if (text === null) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const meta: AttrMeta = {};
  for (const [name, entry] of Object.entries(parsed)) {
    if (!Array.isArray(entry)) continue;
    const [t, s, q, o, c] = entry as unknown[];
    if (typeof t !== 'number' || typeof s !== 'string' || typeof q !== 'number' || (o !== null && typeof o !== 'string')) continue;
    meta[name] = typeof c === 'number' ? { t, s, q, o, c } : { t, s, q, o };
  }
  return meta;
}

function stateOf(data: Readonly<Record<string, unknown>>): Record<string, unknown> | undefined {
  const state = data.state;
  return typeof state === 'object' && state !== null && !Array.isArray(state) ? (state as Record<string, unknown>) : undefined;
}

/**
 * The attributes of `data.state` a new version sets or removes compared with `before` (what the server holds);
 * undefined when anything else of `data` differs too, or either is not a state: then the version goes whole.
 */
export function changedAttributes(before: Readonly<Record<string, unknown>>, after: Readonly<Record<string, unknown>>): string[] | undefined {
  const a = stateOf(before);
  const b = stateOf(after);
  if (a === undefined || b === undefined) return undefined;
  const restKeys = new Set([...Object.keys(before), ...Object.keys(after)]);
  restKeys.delete('state');
  for (const key of restKeys) if (!jsonEqual(before[key], after[key])) return undefined;
  const names: string[] = [];
  for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (Object.hasOwn(a, name) !== Object.hasOwn(b, name) || !jsonEqual(a[name], b[name])) names.push(name);
  }
  return names;
}

/**
 * A pulled entity_state applied to the local one (the gateway's side): a partial change sets its attributes and
 * removes `removed`; a whole one replaces the state. Attributes in `keep` (a pending local change's) are left as they
 * are; `touched` lists those the remote change would have changed (a conflict the server arbitrates on push).
 */
export function applyRemoteState(
  local: Readonly<Record<string, unknown>> | undefined,
  remote: Readonly<Record<string, unknown>>,
  change: { readonly partial: boolean; readonly removed: readonly string[] },
  keep: ReadonlySet<string>,
): { data: Record<string, unknown>; touched: string[] } {
  const localState = local === undefined ? {} : (stateOf(local) ?? {});
  const remoteState = stateOf(remote) ?? {};
  const state: Record<string, unknown> = { ...localState };
  const touched: string[] = [];
  const set = (name: string, present: boolean, value?: unknown): void => {
    const same = Object.hasOwn(localState, name) === present && (!present || jsonEqual(localState[name], value));
    if (same) return;
    if (keep.has(name)) {
      touched.push(name);
      return;
    }
    if (present) state[name] = value;
    else delete state[name];
  };
  for (const [name, value] of Object.entries(remoteState)) set(name, true, value);
  const removed = change.partial ? change.removed : Object.keys(localState).filter((n) => !Object.hasOwn(remoteState, n));
  for (const name of removed) set(name, false);
  const rest = keep.size > 0 && local !== undefined ? local : change.partial && local !== undefined ? { ...local, ...remote } : remote;
  return { data: { ...rest, state }, touched };
}

/**
 * Meeting the original Python Blowing-Off client (v1) where the seed allows it (docs/protocol.md §Compatibility).
 * Pure decoding rules, applied by the handlers before the store sees a message, plus the little per-client memory the
 * sync_ack clamp needs. Nothing here widens what a client may do: the request is answered as the equivalent request
 * in this profile's spelling would be, and nothing a client sends is recorded as a watermark.
 *
 * - `entity_types` may name types this server does not store (`users`, `houses`): ignored and reported back
 *   (`ignored_entity_types`), not a 400.
 * - A naive timestamp (no zone) is a client's own clock reading: this server only emits `…Z`. A naive `last_sync`
 *   later than anything issued to the home is the seed's "client too far behind" (INVALID_SYNC_STATE) answered as the
 *   full resync it asks for, in the same response (`resync`); a naive `sync_completed_at` up to ACK_CLOCK_SKEW_US
 *   after what was issued is clamped to the last `server_time` issued to that client.
 * - A pushed entity_state may carry `state` as a JSON-encoded string and name its device as `entity_id`
 *   (with `entity_type: "device"`) instead of `device_id`: decoded, within a per-push value budget.
 */
import {
  isNaiveTimestamp,
  MAX_DATA_DEPTH,
  normaliseEntityType,
  parseTimestamp,
  type Micros,
  type WirePushChange,
} from '../protocol/index.js';
import { scanJson } from './http/json-scan.js';

/** How far after the last issued server_time a naive sync_completed_at (a client's clock) is clamped, not refused. */
export const ACK_CLOCK_SKEW_US = 5_000_000;
/** Largest JSON-encoded `state` string decoded (bytes). */
export const MAX_ENCODED_STATE_BYTES = 64 * 1024;
/** JSON values all decoded `state` strings of one push may build together (the body scan counted each string as one). */
export const MAX_DECODED_VALUES_PER_PUSH = 65_536;

export interface EntityTypeFilter {
  /** The known names, as sent (the handler builds its mask from them); empty = every type when nothing was ignored. */
  readonly known: readonly string[];
  /** Names this server does not store, as sent, in order, without repeats. */
  readonly ignored: readonly string[];
}

/** Splits a sync_request's `entity_types` into the types this server stores and the ones it ignores. */
export function splitEntityTypes(names: readonly string[] | undefined): EntityTypeFilter {
  const known: string[] = [];
  const ignored: string[] = [];
  for (const name of names ?? []) {
    if (normaliseEntityType(name) !== undefined) known.push(name);
    else if (!ignored.includes(name)) ignored.push(name);
  }
  return { known, ignored };
}

/**
 * What a `last_sync` later than the home's bound means: `refuse` (409 INVALID_SYNC_STATE: a value this server emitted
 * and lost, e.g. restored from a backup) or `full` (a naive value, i.e. a client's clock: answered as a full resync).
 */
export function futureLastSync(text: string): 'refuse' | 'full' {
  return isNaiveTimestamp(text) ? 'full' : 'refuse';
}

export type AckDecision =
  | { readonly kind: 'record'; readonly watermark: Micros }
  /** Clamped: record `watermark` (the last server_time issued to the client), or nothing when it is not known. */
  | { readonly kind: 'clamp'; readonly watermark: Micros | undefined }
  | { readonly kind: 'refuse' };

/**
 * A sync_completed_at against the home's bound: at or below it is recorded as sent; a naive value at most
 * ACK_CLOCK_SKEW_US later (a client's clock just after its sync) is clamped to the last server_time issued to this
 * client (never beyond the bound); anything else is refused.
 */
export function decideAck(text: string, bound: Micros, lastIssued: Micros | undefined): AckDecision {
  const value = parseTimestamp(text);
  if (value === undefined) return { kind: 'refuse' };
  if (value <= bound) return { kind: 'record', watermark: value };
  if (!isNaiveTimestamp(text) || value - bound > ACK_CLOCK_SKEW_US) return { kind: 'refuse' };
  return { kind: 'clamp', watermark: lastIssued !== undefined && lastIssued <= bound ? lastIssued : undefined };
}

/** The last server_time issued to each client by a sync_request (kept in memory: after a restart a clamp records nothing). */
export class IssuedToClients {
  private readonly last = new Map<string, Micros>();

  note(clientId: string, watermark: Micros): void {
    const prior = this.last.get(clientId);
    if (prior === undefined || watermark > prior) this.last.set(clientId, watermark);
  }

  lastIssued(clientId: string): Micros | undefined {
    return this.last.get(clientId);
  }
}

export interface DecodedPush {
  readonly changes: WirePushChange[];
  /** How many entity_state changes were rewritten from the Blowing-Off spelling. */
  readonly decoded: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Decodes a JSON-encoded state within `budget.values`; undefined when it is not a bounded JSON object. */
function decodeState(text: string, budget: { values: number }): Record<string, unknown> | undefined {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_ENCODED_STATE_BYTES) return undefined;
  // `state` sits at level 2 of `data`: what it holds may nest MAX_DATA_DEPTH - 1 levels.
  const scan = scanJson(bytes, { maxDepth: MAX_DATA_DEPTH - 1, maxValues: budget.values });
  if (!scan.ok) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isPlainObject(parsed)) return undefined;
  budget.values -= scan.values;
  return parsed;
}

/** The Blowing-Off spelling of one entity_state's data, rewritten; the same object when nothing applies. */
function decodeStateData(data: Record<string, unknown>, budget: { values: number }): Record<string, unknown> {
  let out = data;
  if (typeof data.state === 'string') {
    const state = decodeState(data.state, budget);
    if (state !== undefined) out = { ...out, state };
  }
  const namesDevice = data.entity_type === undefined || data.entity_type === 'device';
  if (data.device_id === undefined && typeof data.entity_id === 'string' && namesDevice) {
    out = { ...out, device_id: data.entity_id };
  }
  return out;
}

/**
 * Rewrites the entity_state changes of a push that use the Blowing-Off spelling (`state` as a JSON string, the
 * device as `entity_id`); every other change is passed through untouched. A state string that is not a bounded JSON
 * object stays a string, so validation rejects that change on its own with `data.state: expected an object`.
 */
export function decodeLegacyPush(changes: readonly WirePushChange[]): DecodedPush {
  const budget = { values: MAX_DECODED_VALUES_PER_PUSH };
  let decoded = 0;
  const out = changes.map((change) => {
    if (change.data === undefined || normaliseEntityType(change.entity_type) !== 'entity_state') return change;
    const data = decodeStateData(change.data, budget);
    if (data === change.data) return change;
    decoded += 1;
    return { ...change, data };
  });
  return { changes: out, decoded };
}

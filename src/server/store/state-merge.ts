/**
 * The attribute-level decision for a pushed entity_state over a live stored one (extension; docs/protocol.md
 * §Attribute-level state): per attribute by the seed's rules (protocol/attributes.ts), the rest of `data` by the
 * entity's own version. Pure: it returns the row to write (if any), the conflict entry and the history records; the
 * push applier writes them.
 */
import {
  decodeAttrMeta,
  encodeAttrMeta,
  formatTimestamp,
  latestVersion,
  mergeAttributes,
  metaOfWrite,
  resolveLastWriteWins,
  wholeStateWrite,
  type AttrDecision,
  type AttrVersion,
  type Micros,
  type WireAttributeConflict,
} from '../../protocol/index.js';
import type { HistoryRecord } from './history.js';
import type { Candidate, PushContext } from './validate.js';

/** The stored columns the decision reads. */
export interface StoredState {
  readonly data: string;
  readonly updated_at: number;
  readonly sync_id: string;
  readonly seq: number;
  readonly origin_client: string | null;
  readonly attrs: string | null;
  readonly claimed_at: number | null;
}

export interface StateRow {
  readonly body: Record<string, unknown>;
  readonly attrs: string;
  readonly updatedAt: Micros;
  readonly syncId: string;
  readonly foreignSeq: Micros;
  readonly claimedAt: Micros | null;
}

export interface StatePlan {
  /** The row to write; undefined when the push changes nothing. */
  readonly row: StateRow | undefined;
  /** Whether any attribute (or the rest of data) of the push won. */
  readonly clientWon: boolean;
  readonly attributes: WireAttributeConflict[];
  /** Reason of the first reported decision. */
  readonly reason: string;
  readonly history: Omit<HistoryRecord, 'homeId'>[];
}

function objectOf(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function withoutState(body: Record<string, unknown>): Record<string, unknown> {
  const { state: _state, ...rest } = body;
  return rest;
}

function wireAttribute(d: AttrDecision, clientVersion: AttrVersion): WireAttributeConflict {
  const entry: WireAttributeConflict = { name: d.name, resolution: d.winner === 'client' ? 'client_wins' : 'server_wins', reason: d.reason };
  if (d.server.present) entry.server_value = d.server.value;
  if (d.client.present) entry.client_value = d.client.value;
  if (d.server.version !== undefined) entry.server_updated_at = formatTimestamp(d.server.version.t);
  entry.client_updated_at = formatTimestamp(clientVersion.t);
  return entry;
}

/** History records of the decisions: the push's lost attributes (one record), each overwritten version (one each). */
function historyOf(c: Candidate, ctx: PushContext, deviceId: unknown, decisions: readonly AttrDecision[]): Omit<HistoryRecord, 'homeId'>[] {
  const out: Omit<HistoryRecord, 'homeId'>[] = [];
  const lost = decisions.filter((d) => d.winner === 'server');
  const base = { entityType: c.type, entityId: c.entityId, operation: 'update' as const };
  if (lost.length > 0) {
    const state = Object.fromEntries(lost.filter((d) => d.client.present).map((d) => [d.name, d.client.value]));
    out.push({
      ...base,
      why: 'lost',
      reason: lost[0]?.reason ?? 'newer_on_server',
      data: { device_id: deviceId, state },
      attributes: lost.map((d) => d.name),
      updatedAt: c.updatedAt,
      claimedAt: c.claimedAt ?? null,
      syncId: c.syncId,
      writtenBy: ctx.clientId,
      decidedBy: lost[0]?.server.version?.o ?? null,
    });
  }
  const overwritten = new Map<string, AttrDecision[]>();
  for (const d of decisions) {
    if (d.winner !== 'client' || d.server.version === undefined) continue;
    const group = overwritten.get(d.server.version.s) ?? [];
    group.push(d);
    overwritten.set(d.server.version.s, group);
  }
  for (const group of overwritten.values()) {
    const v = group[0]?.server.version;
    if (v === undefined) continue;
    out.push({
      ...base,
      why: 'overwritten',
      reason: group[0]?.reason ?? 'newer_on_client',
      data: { device_id: deviceId, state: Object.fromEntries(group.filter((d) => d.server.present).map((d) => [d.name, d.server.value])) },
      attributes: group.map((d) => d.name),
      updatedAt: v.t,
      claimedAt: v.c ?? null,
      syncId: v.s,
      writtenBy: v.o,
      decidedBy: ctx.clientId,
    });
  }
  return out;
}

/** Decides a non-delete entity_state push over a live stored row; `seq` is the commit seq the write would take. */
export function planStateMerge(stored: StoredState, c: Candidate, ctx: PushContext, seq: Micros): StatePlan {
  const storedBody = objectOf(JSON.parse(stored.data));
  const storedState = objectOf(storedBody.state);
  const fallback: AttrVersion = { t: stored.updated_at, s: stored.sync_id, q: stored.seq, o: stored.origin_client, ...(stored.claimed_at === null ? {} : { c: stored.claimed_at }) };
  const version: AttrVersion = { t: c.updatedAt, s: c.syncId, q: seq, o: ctx.clientId, ...(c.claimedAt === undefined ? {} : { c: c.claimedAt }) };
  const incoming = objectOf(c.body.state);
  const write = c.partial ? { set: incoming, removed: c.removed, version } : wholeStateWrite(storedState, incoming, version);
  // An attribute the metadata does not know (a row written before attributes were tracked) keeps the row's version.
  const meta = { ...metaOfWrite(storedState, fallback), ...decodeAttrMeta(stored.attrs) };
  const merged = mergeAttributes({ state: storedState, meta, fallback }, write);
  // The rest of `data` (device_id, home_id, extra fields) follows the entity's version: the seed's rules, whole.
  const restWins = resolveLastWriteWins(
    { updatedAt: stored.updated_at, syncId: stored.sync_id, deleted: false },
    { updatedAt: c.updatedAt, syncId: c.syncId, deleted: false },
  ).winner === 'client';
  const storedRest = withoutState(storedBody);
  const rest = restWins ? (c.partial ? { ...storedRest, ...withoutState(c.body) } : withoutState(c.body)) : storedRest;
  const restChanged = JSON.stringify(rest) !== JSON.stringify(storedRest);
  const reported = merged.decisions.filter((d) => d.winner === 'server' || (d.server.version !== undefined && d.server.version.o !== ctx.clientId));
  const attributes = reported.map((d) => wireAttribute(d, version));
  const history = historyOf(c, ctx, rest.device_id ?? c.body.device_id, merged.decisions);
  const clientWon = merged.wrote || restChanged;
  const lostAny = merged.decisions.some((d) => d.winner === 'server');
  const reason = reported[0]?.reason ?? 'newer_on_client';
  if (!clientWon) return { row: undefined, clientWon, attributes, reason, history };
  const latest = latestVersion(merged.meta, version);
  const all = Object.values(merged.meta);
  const pure = all.every((v) => v.s === c.syncId) && !lostAny;
  let foreignSeq = 0;
  for (const v of all) if (v.o !== ctx.clientId && v.q > foreignSeq) foreignSeq = v.q;
  const row: StateRow = {
    body: { ...rest, state: merged.state },
    attrs: encodeAttrMeta(merged.meta),
    updatedAt: latest.t,
    // A merged version gets an id of its own, so a peer that skips "its own" version by sync_id still takes it.
    syncId: pure ? c.syncId : `${c.syncId.slice(0, 200)}+m${seq.toString(36)}`,
    foreignSeq,
    claimedAt: latest.c ?? null,
  };
  return { row, clientWon, attributes, reason, history };
}

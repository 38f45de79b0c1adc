/** How `app` prints what it reads: one line per change or state, compact JSON for the attributes. */
import { splitEnvelopeFields, type WireChange, type WireHistoryEntry } from '../protocol/index.js';
import type { DeviceState } from './device-state.js';

/** The part of a change worth reading: an entity_state's `state`, else `data` without the envelope fields. */
function compactData(change: WireChange): string {
  const split = splitEnvelopeFields(change.data);
  const body = split.ok ? split.value.body : change.data;
  const state = body.state;
  const shown = change.entity_type === 'entity_state' && typeof state === 'object' && state !== null ? state : body;
  return JSON.stringify(shown);
}

/** `<updated_at> <entity_type> <entity_id> <operation> <compact data>` (a delete shows the last data it had). */
export function changeLine(change: WireChange): string {
  return `${change.updated_at} ${change.entity_type} ${change.entity_id} ${change.operation} ${compactData(change)}`;
}

/** `<entity_id> <state> (updated <updated_at>)` for `app get`. */
export function stateLine(state: DeviceState): string {
  return `${state.entityId} ${JSON.stringify(state.state)} (updated ${state.updatedAt})`;
}

/** The JSON object `app get --json` prints: the entity as the server holds it. */
export function stateJson(state: DeviceState): Record<string, unknown> {
  return { entity_type: 'entity_state', entity_id: state.entityId, data: state.data, updated_at: state.updatedAt, sync_id: state.syncId };
}

/**
 * `<recorded_at> <why> <reason> <what> written by <client> at <updated_at> [claimed <t>], decided by <client>` for
 * `app history`: one line per version that lost or was overwritten.
 */
export function historyLine(e: WireHistoryEntry): string {
  const state = e.data.state;
  const what = e.operation === 'delete' ? 'delete' : JSON.stringify(typeof state === 'object' && state !== null ? state : e.data);
  const removed = (e.attributes ?? []).filter((n) => typeof state !== 'object' || state === null || !Object.hasOwn(state, n));
  const claimed = e.claimed_updated_at === undefined ? '' : ` (claimed ${e.claimed_updated_at})`;
  return (
    `${e.recorded_at} ${e.why} ${e.reason} ${what}${removed.length > 0 ? ` removed ${removed.join(',')}` : ''}` +
    ` written by ${e.written_by ?? '?'} at ${e.updated_at}${claimed}, decided by ${e.decided_by ?? '?'}`
  );
}

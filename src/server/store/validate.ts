/**
 * Per-change validation of a pushed change (docs/protocol.md §Per-change rejection): a change the server cannot
 * accept becomes a "rejected" result with a code; it never fails the rest of the push.
 */
import {
  DATA_SCHEMAS,
  normaliseEntityType,
  parseTimestamp,
  splitEnvelopeFields,
  type EntityType,
  type Micros,
  type Operation,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
} from '../../protocol/index.js';

export interface PushContext {
  readonly homeId: string;
  readonly clientId: string;
}

export interface PushOutcome {
  readonly applied: WireApplied;
  readonly conflict?: WireConflict;
}

/** A pushed change that passed validation, in domain terms. */
export interface Candidate {
  readonly type: EntityType;
  readonly entityId: string;
  readonly op: Operation;
  readonly body: Record<string, unknown>;
  /** JSON text of `body`, as stored. */
  readonly bodyText: string;
  readonly updatedAt: Micros;
  readonly syncId: string;
  readonly deleted: boolean;
  readonly clientSyncId: string;
}

const MAX_ERROR_MESSAGE = 1000;

function rejected(change: WirePushChange, code: string, message: string): PushOutcome {
  return {
    applied: {
      client_sync_id: change.client_sync_id,
      server_sync_id: null,
      status: 'rejected',
      entity_type: change.entity_type,
      entity_id: change.entity_id,
      error: { code, message: message.slice(0, MAX_ERROR_MESSAGE) },
    },
  };
}

/** splitEnvelopeFields, skipped when no envelope field is present (the common case on the hot path). */
function splitData(data: Record<string, unknown>): ReturnType<typeof splitEnvelopeFields> {
  if (data.id === undefined && data.sync_id === undefined && data.updated_at === undefined) {
    return { ok: true, value: { body: data, id: undefined, syncId: undefined, updatedAt: undefined } };
  }
  return splitEnvelopeFields(data);
}

let lastStamp = '';
let lastStampUs: Micros | undefined;
/** parseTimestamp, remembering the last string (the changes of one push usually share their updated_at). */
function parseStamp(text: string): Micros | undefined {
  if (text !== lastStamp) {
    lastStampUs = parseTimestamp(text);
    lastStamp = text;
  }
  return lastStampUs;
}

/** Validates one change; returns the candidate or the per-change rejection. */
export function validateChange(change: WirePushChange, ctx: PushContext): Candidate | PushOutcome {
  const type = normaliseEntityType(change.entity_type);
  if (type === undefined) {
    return rejected(change, 'UNKNOWN_ENTITY_TYPE', `unknown entity type ${JSON.stringify(change.entity_type)}`);
  }
  const split = splitData(change.data ?? {});
  if (!split.ok) return rejected(change, 'INVALID_ENTITY', split.problems.join('; '));
  const { body, id, syncId, updatedAt } = split.value;
  if (id !== undefined && id !== change.entity_id) {
    return rejected(change, 'INVALID_ENTITY', `data.id ${JSON.stringify(id)} differs from entity_id`);
  }
  const stamp = change.updated_at ?? updatedAt;
  const updatedAtUs = stamp === undefined ? undefined : parseStamp(stamp);
  if (updatedAtUs === undefined) {
    return rejected(change, 'INVALID_ENTITY', 'updated_at is required (on the change or inside data)');
  }
  if (change.operation !== 'delete') {
    const parsed = DATA_SCHEMAS[type].safeParse(body);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `data.${i.path.map(String).join('.')}: ${i.message}`);
      return rejected(change, 'INVALID_ENTITY', problems.join('; '));
    }
  }
  if (body.home_id !== undefined && body.home_id !== ctx.homeId) {
    return rejected(change, 'FORBIDDEN', 'data.home_id names another home than the client belongs to');
  }
  let bodyText: string;
  try {
    bodyText = JSON.stringify(body);
  } catch {
    // JSON.parse accepts nesting that JSON.stringify cannot re-serialise (stack overflow): refuse, never a 500.
    return rejected(change, 'INVALID_ENTITY', 'data is nested too deeply');
  }
  return {
    type,
    entityId: change.entity_id,
    op: change.operation,
    body,
    bodyText,
    updatedAt: updatedAtUs,
    syncId: change.sync_id ?? syncId ?? change.client_sync_id,
    deleted: change.operation === 'delete',
    clientSyncId: change.client_sync_id,
  };
}

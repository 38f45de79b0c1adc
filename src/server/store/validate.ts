/**
 * Per-change validation of a pushed change (docs/protocol.md §Per-change rejection): a change the server cannot
 * accept becomes a "rejected" result with a code; it never fails the rest of the push.
 */
import {
  DATA_SCHEMAS,
  isWellFormedText,
  jsonTextProblem,
  MAX_DATA_DEPTH,
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
  /**
   * Clamp extension (docs/protocol.md §Clamp): the latest `updated_at` the server orders a version by — its receive
   * time plus the tolerance. A later claimed time is kept as `claimedAt`. Absent: no clamp (the seed).
   */
  readonly clampUs?: Micros;
  /** The clamp's tolerance, µs: the store sets `clampUs` to its receive time plus this. Absent: no clamp. */
  readonly clampToleranceUs?: number;
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
  /** Attribute-level extension: `body.state` holds only the changed attributes. */
  readonly partial: boolean;
  /** Attribute-level extension: attributes this change removes. */
  readonly removed: readonly string[];
  /** The claimed `updated_at` when the clamp moved it to `updatedAt`. */
  readonly claimedAt: Micros | undefined;
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

/**
 * Whether the strings that address a change's result (its client_sync_id, entity type and id) are well-formed, so
 * the result can be stored as text and found again; a change with a malformed one is rejected without being stored
 * (its rejection is decided by its content alone, so a retry gets the same answer).
 */
export function isAddressable(change: WirePushChange): boolean {
  return isWellFormedText(change.client_sync_id) && isWellFormedText(change.entity_id) && isWellFormedText(change.entity_type);
}

/** The ids of the envelope must be well-formed Unicode (docs/protocol.md §Validation). */
function idProblem(change: WirePushChange): string | undefined {
  for (const field of ['entity_id', 'client_sync_id', 'sync_id'] as const) {
    const value = change[field];
    if (value !== undefined && !isWellFormedText(value)) return `${field} is not well-formed Unicode (unpaired surrogate)`;
  }
  return undefined;
}

/** Validates one change; returns the candidate or the per-change rejection. */
export function validateChange(change: WirePushChange, ctx: PushContext): Candidate | PushOutcome {
  const type = normaliseEntityType(change.entity_type);
  if (type === undefined) {
    return rejected(change, 'UNKNOWN_ENTITY_TYPE', `unknown entity type ${JSON.stringify(change.entity_type)}`);
  }
  const badId = idProblem(change);
  if (badId !== undefined) return rejected(change, 'INVALID_ENTITY', badId);
  const text = jsonTextProblem(change.data ?? {}, MAX_DATA_DEPTH, 'data');
  if (text !== undefined) return rejected(change, 'INVALID_ENTITY', text);
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
  const attrProblem = attributeProblem(change, type);
  if (attrProblem !== undefined) return rejected(change, 'INVALID_ENTITY', attrProblem);
  // Depth is bounded above (MAX_DATA_DEPTH), so this cannot overflow the stack.
  const bodyText = JSON.stringify(body);
  const clamped = ctx.clampUs !== undefined && updatedAtUs > ctx.clampUs;
  return {
    type,
    entityId: change.entity_id,
    op: change.operation,
    body,
    bodyText,
    updatedAt: clamped && ctx.clampUs !== undefined ? ctx.clampUs : updatedAtUs,
    syncId: change.sync_id ?? syncId ?? change.client_sync_id,
    deleted: change.operation === 'delete',
    clientSyncId: change.client_sync_id,
    partial: change.partial === true,
    removed: change.removed_attributes ?? [],
    claimedAt: clamped ? updatedAtUs : undefined,
  };
}

/** `partial` and `removed_attributes` are for entity_state changes only, with well-formed names. */
function attributeProblem(change: WirePushChange, type: EntityType): string | undefined {
  if (change.partial !== true && change.removed_attributes === undefined) return undefined;
  if (type !== 'entity_state') return 'partial and removed_attributes are for entity_state changes only';
  if (change.removed_attributes !== undefined && change.partial !== true) return 'removed_attributes needs partial: true';
  for (const name of change.removed_attributes ?? []) {
    if (!isWellFormedText(name)) return 'removed_attributes: a name is not well-formed Unicode (unpaired surrogate)';
  }
  return undefined;
}

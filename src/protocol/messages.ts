/**
 * The Inbetweenies wire messages (seed §Message Formats) as zod schemas: each yields the runtime validator and the
 * TypeScript type, so nothing from the network is cast. Wire types keep the seed's snake_case spelling; domain code
 * maps them explicitly (see server/ and sync/).
 *
 * Unknown fields are ignored (stripped) for forward compatibility; unknown entity types are refused (request) or
 * rejected per change (push), see docs/protocol.md §Validation.
 */
import { z } from 'zod';
import { normaliseEntityType } from './entity-types.js';
import { DIGEST_BUCKETS } from './digest.js';
import { parseTimestamp } from './timestamps.js';

/** Length limits of strings count Unicode code points (zod 4 `max`), as Python's len() does, not UTF-16 units. */
export const MAX_ID_LENGTH = 256;

const WELL_FORMED = { message: 'must be well-formed Unicode (no unpaired surrogate)' };
const wellFormed = (text: string): boolean => text.isWellFormed();

const DigestHexSchema = z.string().regex(/^[0-9a-f]{16}$/, 'expected 16 lowercase hex digits');

export const TimestampSchema = z
  .string()
  .max(64)
  .refine((s) => parseTimestamp(s) !== undefined, { message: 'expected an ISO-8601 timestamp' });

/** An id: 1–256 code points of well-formed Unicode. */
const IdSchema = z.string().min(1).max(MAX_ID_LENGTH).refine(wellFormed, WELL_FORMED);
/**
 * The ids of a pushed change: a malformed one (unpaired surrogate) is rejected per change with INVALID_ENTITY
 * (server/store/validate.ts), not by the request schema, so the rest of the push still applies.
 */
const PushIdSchema = z.string().min(1).max(MAX_ID_LENGTH);

/** A known entity type in either spelling (`device` or `devices`). */
export const EntityTypeNameSchema = z
  .string()
  .max(64)
  .refine((s) => normaliseEntityType(s) !== undefined, {
    message: 'expected one of entity_state, device, room (singular or plural)',
  });

export const OperationSchema = z.enum(['create', 'update', 'delete']);
export type Operation = z.infer<typeof OperationSchema>;

/** A plain JSON object, checked without copying it (z.record would copy every key: a 1000-change push twice over). */
export const PlainObjectSchema = z.custom<Record<string, unknown>>(
  (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  { message: 'expected an object' },
);
export const DataSchema = PlainObjectSchema;
export type WireData = z.infer<typeof DataSchema>;

// ---- 1. sync_request (seed §1) -------------------------------------------------------------------------------
export const SyncRequestSchema = z.object({
  type: z.literal('sync_request'),
  client_id: IdSchema,
  /** The `server_time` of the last completed sync; null or absent asks for everything (full sync). */
  last_sync: TimestampSchema.nullable().optional(),
  /**
   * Filter by type; names this server does not store (the Blowing-Off client asks for `users`) are ignored and
   * reported in the delta's `ignored_entity_types` (docs/protocol.md §Compatibility).
   */
  entity_types: z.array(z.string().max(64).refine(wellFormed, WELL_FORMED)).max(16).optional(),
  include_deleted: z.boolean().optional(),
  /** Pagination (docs/protocol.md §Pagination): the opaque cursor of the previous page (base64url). */
  cursor: z.string().min(1).max(512).regex(/^[A-Za-z0-9_-]+$/, 'expected the opaque cursor of the previous page').nullable().optional(),
  /** Page size wish; the server caps it at its own limit (default 1000, seed §Batching). */
  limit: z.number().int().min(1).max(100_000).optional(),
  /**
   * Live wait (extension, docs/protocol.md §Live waits): seconds the server may hold the request while its delta is
   * empty; it caps the value at its own maximum. 0 or absent: answered at once, as the seed has it.
   */
  wait: z.number().min(0).max(3600).optional(),
  /**
   * Extensions the client understands (docs/protocol.md §Capabilities): `partial` (attribute-level entity_state
   * changes in the delta), `digest` (the convergence digest). Unknown names are ignored; absent: the seed only.
   */
  caps: z.array(z.string().max(32)).max(16).optional(),
  /** Convergence digest extension: also send the per-bucket digests. */
  digest_buckets: z.boolean().optional(),
  /** Convergence digest extension (repair): only the entities of these buckets; needs `last_sync` null. */
  buckets: z.array(z.number().int().min(0).max(DIGEST_BUCKETS - 1)).min(1).max(DIGEST_BUCKETS).optional(),
});
export type SyncRequest = z.infer<typeof SyncRequestSchema>;

// ---- 2. sync_delta (seed §2) ---------------------------------------------------------------------------------
export const ChangeSchema = z.object({
  entity_type: EntityTypeNameSchema,
  entity_id: IdSchema,
  operation: OperationSchema,
  data: DataSchema,
  updated_at: TimestampSchema,
  sync_id: IdSchema,
  /** Attribute-level state extension: `data.state` holds only the attributes changed since `last_sync`. */
  partial: z.boolean().optional(),
  /** Attribute-level state extension: attributes removed since `last_sync` (with `partial`). */
  removed_attributes: z.array(z.string().max(MAX_ID_LENGTH)).max(100_000).optional(),
  /** Clamp extension: the time the writer claimed, when the server ordered the version by an earlier one. */
  claimed_updated_at: TimestampSchema.optional(),
});
export type WireChange = z.infer<typeof ChangeSchema>;

export const VersionSchema = z.object({
  operation: OperationSchema,
  data: DataSchema,
  updated_at: TimestampSchema,
  sync_id: IdSchema,
  deleted: z.boolean(),
});
export type WireVersion = z.infer<typeof VersionSchema>;

export const ConflictTypeSchema = z.enum(['UPDATE_UPDATE', 'UPDATE_DELETE', 'CREATE_CREATE']);
export const ResolutionSchema = z.enum(['server_wins', 'client_wins']);

/** One attribute of an attribute-level conflict (extension); a missing `*_value` means the attribute was absent. */
export const AttributeConflictSchema = z.object({
  name: z.string().max(MAX_ID_LENGTH),
  resolution: ResolutionSchema,
  reason: z.string().max(200),
  server_value: z.unknown().optional(),
  client_value: z.unknown().optional(),
  server_updated_at: TimestampSchema.optional(),
  client_updated_at: TimestampSchema.optional(),
});
export type WireAttributeConflict = z.infer<typeof AttributeConflictSchema>;

export const ConflictSchema = z.object({
  entity_type: EntityTypeNameSchema,
  entity_id: IdSchema,
  type: ConflictTypeSchema,
  reason: z.string().max(200),
  server_version: VersionSchema.nullable(),
  client_version: VersionSchema,
  resolution: ResolutionSchema,
  client_sync_id: IdSchema.optional(),
  /** Attribute-level state extension: each attribute decided against another write, with both values. */
  attributes: z.array(AttributeConflictSchema).max(100_000).optional(),
  /** Clamp extension: the pushed `updated_at` was later than the server's receive time + tolerance; ordered by this. */
  clamped_to: TimestampSchema.optional(),
});
export type WireConflict = z.infer<typeof ConflictSchema>;

/**
 * How a live wait ended (extension). `reason`: `data` (the delta was not empty: answered at once), `change` (woken by
 * another client's commit), `timeout`, `shutdown` (the server is closing: reconnect, not an error); a client treats
 * a reason it does not know like `timeout`.
 */
export const LiveInfoSchema = z.object({
  reason: z.string().max(32),
  waited_ms: z.number().int().nonnegative(),
  max_wait_seconds: z.number().positive(),
});
export type LiveInfo = z.infer<typeof LiveInfoSchema>;

export const SyncDeltaSchema = z.object({
  type: z.literal('sync_delta'),
  server_time: TimestampSchema,
  changes: z.array(ChangeSchema),
  /** Always sent to a peer of the seed; a client that announced `caps` gets it only when not empty. */
  conflicts: z.array(ConflictSchema).default([]),
  /** Always sent to a peer of the seed; a client that announced `caps` gets it only when true. */
  more: z.boolean().default(false),
  cursor: z.string().nullable().optional(),
  /** Present only when the server honoured a live wait (extension, docs/protocol.md §Live waits). */
  live: LiveInfoSchema.optional(),
  /** Convergence digest extension: the digest of the client's home as of `server_time` (16 hex digits). */
  digest: DigestHexSchema.optional(),
  /** Convergence digest extension: the per-bucket digests, when asked with `digest_buckets`. */
  digest_buckets: z.array(DigestHexSchema).length(DIGEST_BUCKETS).optional(),
  /** Extension: the request's `entity_types` this server does not store, ignored (docs/protocol.md §Compatibility). */
  ignored_entity_types: z.array(z.string().max(64)).max(16).optional(),
  /**
   * Extension: the request's `last_sync` was a client's clock, never issued (INVALID_SYNC_STATE): this delta is the
   * full resync it calls for (docs/protocol.md §Compatibility).
   */
  resync: z.object({ code: z.literal('INVALID_SYNC_STATE'), reason: z.string().max(64) }).optional(),
});
export type SyncDelta = z.infer<typeof SyncDeltaSchema>;

// ---- 3. sync_push (seed §3) ----------------------------------------------------------------------------------
/**
 * The envelope of one pushed change. `entity_type` and `data` are checked per change by the server so one bad change
 * is rejected on its own (docs/protocol.md §Per-change rejection); what makes a change unaddressable (no
 * `client_sync_id`, no `entity_id`, no valid operation) refuses the whole request.
 */
export const PushChangeSchema = z.object({
  entity_type: z.string().min(1).max(64),
  entity_id: PushIdSchema,
  operation: OperationSchema,
  data: DataSchema.optional(),
  updated_at: TimestampSchema.optional(),
  sync_id: PushIdSchema.optional(),
  client_sync_id: PushIdSchema,
  /** Attribute-level state extension: `data.state` holds only the changed attributes (entity_state only). */
  partial: z.boolean().optional(),
  /** Attribute-level state extension: attributes this change removes (entity_state only). */
  removed_attributes: z.array(PushIdSchema).max(10_000).optional(),
});
export type WirePushChange = z.infer<typeof PushChangeSchema>;

export const SyncPushSchema = z.object({
  type: z.literal('sync_push'),
  client_id: IdSchema,
  changes: z.array(PushChangeSchema).max(100_000),
});
export type SyncPush = z.infer<typeof SyncPushSchema>;

// ---- 4. sync_result (seed §4) --------------------------------------------------------------------------------
export const ApplyStatusSchema = z.enum(['applied', 'conflict', 'rejected']);
export type ApplyStatus = z.infer<typeof ApplyStatusSchema>;

export const AppliedSchema = z.object({
  client_sync_id: IdSchema,
  server_sync_id: IdSchema.nullable(),
  status: ApplyStatusSchema,
  entity_type: z.string().max(64),
  entity_id: IdSchema,
  error: z.object({ code: z.string().max(64), message: z.string().max(1000) }).optional(),
  /** Clamp extension: the pushed `updated_at` was later than the server allows; the version is ordered by this. */
  clamped_to: TimestampSchema.optional(),
});
export type WireApplied = z.infer<typeof AppliedSchema>;

export const SyncResultSchema = z.object({
  type: z.literal('sync_result'),
  applied: z.array(AppliedSchema),
  conflicts: z.array(ConflictSchema),
  server_time: TimestampSchema.optional(),
});
export type SyncResult = z.infer<typeof SyncResultSchema>;

// ---- 5. sync_ack (seed §5) -----------------------------------------------------------------------------------
export const SyncAckSchema = z.object({
  type: z.literal('sync_ack'),
  client_id: IdSchema,
  sync_completed_at: TimestampSchema,
});
export type SyncAck = z.infer<typeof SyncAckSchema>;

export const SyncAckResultSchema = z.object({
  type: z.literal('sync_ack_result'),
  acknowledged: z.boolean(),
  server_time: TimestampSchema,
  /** Extension: a naive sync_completed_at slightly ahead of what was issued was clamped (docs/protocol.md §Compatibility). */
  clamped: z.boolean().optional(),
});
export type SyncAckResult = z.infer<typeof SyncAckResultSchema>;

// ---- sync history (extension, docs/protocol.md §Sync history) ----------------------------------------------
export const HistoryEntrySchema = z.object({
  id: z.number().int().positive(),
  recorded_at: TimestampSchema,
  /** `lost`: the version lost a resolution; `overwritten`: it was the stored version and a newer one replaced it. */
  why: z.enum(['lost', 'overwritten']),
  reason: z.string().max(200),
  entity_type: z.string().max(64),
  entity_id: IdSchema,
  operation: OperationSchema,
  data: DataSchema,
  /** Attribute-level: the attributes this entry is about (their values are in `data.state`). */
  attributes: z.array(z.string().max(MAX_ID_LENGTH)).optional(),
  updated_at: TimestampSchema,
  claimed_updated_at: TimestampSchema.optional(),
  sync_id: IdSchema,
  /** Who wrote this version (null: unknown). */
  written_by: z.string().max(MAX_ID_LENGTH).nullable(),
  /** Whose write decided against it. */
  decided_by: z.string().max(MAX_ID_LENGTH).nullable(),
});
export type WireHistoryEntry = z.infer<typeof HistoryEntrySchema>;

export const HistoryResponseSchema = z.object({
  type: z.literal('history'),
  entity_type: z.string().max(64),
  entity_id: IdSchema,
  entries: z.array(HistoryEntrySchema),
  more: z.boolean(),
  /** Pass as `before` to get the next (older) page; null when `more` is false. */
  next_before: z.number().int().positive().nullable(),
});
export type HistoryResponse = z.infer<typeof HistoryResponseSchema>;

// ---- error body (docs/protocol.md §Errors) -------------------------------------------------------------------
export const ErrorBodySchema = z.object({
  type: z.literal('error'),
  code: z.string().max(64),
  message: z.string().max(2000),
  retry_after: z.number().nonnegative().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

// ---- auth (docs/protocol.md §Authentication) -----------------------------------------------------------------
export const TokenRequestSchema = z.object({
  client_id: IdSchema,
  client_secret: z.string().min(1).max(512).refine(wellFormed, WELL_FORMED),
});
export type TokenRequest = z.infer<typeof TokenRequestSchema>;

export const RefreshRequestSchema = z.object({ refresh_token: z.string().min(1).max(512).refine(wellFormed, WELL_FORMED) });
export type RefreshRequest = z.infer<typeof RefreshRequestSchema>;

export const TokenResponseSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int().nonnegative(),
  refresh_token: z.string().min(1),
  refresh_expires_in: z.number().int().nonnegative().optional(),
  home_id: z.string().optional(),
});
export type TokenResponse = z.infer<typeof TokenResponseSchema>;

/** What a server supports beyond the seed (extension; additive: a server without it sends no `capabilities`). */
export const CapabilitiesSchema = z.object({
  live_wait: z.object({ max_wait_seconds: z.number().positive() }).optional(),
  /** Attribute-level state, clamp, sync history and convergence digest (docs/protocol.md §Capabilities). */
  partial_state: z.object({}).optional(),
  digest: z.object({ buckets: z.number().int().positive() }).optional(),
  history: z.object({ max_limit: z.number().int().positive() }).optional(),
  clamp: z.object({ tolerance_seconds: z.number().nonnegative() }).optional(),
});
export type Capabilities = z.infer<typeof CapabilitiesSchema>;

export const HealthResponseSchema = z.object({
  status: z.literal('ok'),
  version: z.string(),
  server_time: TimestampSchema,
  capabilities: CapabilitiesSchema.optional(),
});
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

/** Formats zod issues as `path: message` lines, for error bodies and config reports. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    return `${path}: ${issue.message}`;
  });
}

/**
 * Server profiles (docs/protocol.md §Compatibility): what the gateway may expect of the server it syncs with, as pure
 * rules. `inbetweenies` is this project's server (health, token endpoint, signed responses, gzip, every entity type);
 * `funkygibbon-v1` is the original Python FunkyGibbon v1, which implements the seed's three sync endpoints and
 * nothing around them — observed on the wire:
 * - no /api/v1/health and no /api/v1/auth/token; it ignores the bearer token and signs nothing;
 * - a sync_request without `entity_types`, or naming `entity_states`, or with a zoned `last_sync`, answers 500;
 * - a gzip request body answers 400; a pushed change without `data.sync_id` is dropped (`applied: []`), one without
 *   `data.house_id` answers 500; it cannot store entity states and never applies deletes;
 * - its ack answer is `sync_ack_response`, its push result entries carry no `entity_type` / `entity_id` (as in the
 *   seed's own §4 example), its delta's `data` carries `house_id`, `room_name`, `state_json`, `is_deleted`, `version`.
 * `auto` decides between the two from the server's answers (decideFromHealth) and the decision is remembered.
 */
import { z } from 'zod';
import {
  ConflictSchema,
  ErrorBodySchema,
  formatNaiveTimestamp,
  parseTimestamp,
  TimestampSchema,
  type EntityType,
  type SyncRequest,
  type WireChange,
  type WirePushChange,
} from '../protocol/index.js';

export const SERVER_PROFILE_SETTINGS = ['auto', 'inbetweenies', 'funkygibbon-v1'] as const;
export type ServerProfileSetting = (typeof SERVER_PROFILE_SETTINGS)[number];
export type ServerProfile = Exclude<ServerProfileSetting, 'auto'>;

/** What a server profile expects; every rule below reads these, never the profile's name. */
export interface PeerTraits {
  readonly profile: ServerProfile;
  /** GET /api/v1/health exists (else the clock is learnt from the first delta). */
  readonly health: boolean;
  /** Tokens come from /api/v1/auth/token (else a static bearer token from the config, or none). */
  readonly tokenEndpoint: boolean;
  /** Responses are signed (else unsigned responses are accepted: logged at start and shown in `status`). */
  readonly signsResponses: boolean;
  /** Request bodies may be gzipped (a server that refused gzip is remembered as not). */
  readonly gzipRequests: boolean;
  /** `entity_types` sent explicitly, in the server's spelling; undefined: leave it out (all types). */
  readonly entityTypes: readonly string[] | undefined;
  /** Timestamps sent without a zone (the server compares naive timestamps). */
  readonly naiveTimestamps: boolean;
  /** The entity types the server can store; changes of other types stay pending. */
  readonly storable: readonly EntityType[];
  /** Whether the server applies pushed deletes; if not, they stay pending. */
  readonly appliesDeletes: boolean;
  /** Pushed `data` must carry `sync_id` and `house_id` (FunkyGibbon v1 drops or fails changes without). */
  readonly needsHouseId: boolean;
}

export const INBETWEENIES_TRAITS: PeerTraits = {
  profile: 'inbetweenies',
  health: true,
  tokenEndpoint: true,
  signsResponses: true,
  gzipRequests: true,
  entityTypes: undefined,
  naiveTimestamps: false,
  storable: ['entity_state', 'device', 'room'],
  appliesDeletes: true,
  needsHouseId: false,
};

export const FUNKYGIBBON_V1_TRAITS: PeerTraits = {
  profile: 'funkygibbon-v1',
  health: false,
  tokenEndpoint: false,
  signsResponses: false,
  gzipRequests: false,
  entityTypes: ['devices', 'rooms'],
  naiveTimestamps: true,
  storable: ['device', 'room'],
  appliesDeletes: false,
  needsHouseId: true,
};

export function traitsOf(profile: ServerProfile): PeerTraits {
  return profile === 'funkygibbon-v1' ? FUNKYGIBBON_V1_TRAITS : INBETWEENIES_TRAITS;
}

/**
 * `auto`: what the answer to GET /api/v1/health says. A health answer of this protocol → `inbetweenies`; a 404 / 405
 * / 501 (no such endpoint: FunkyGibbon v1 answers `{"detail":"Not Found"}`) → try the seed's own request next
 * (`probe-sync`); anything else (5xx, unreachable) decides nothing yet.
 */
export function decideFromHealth(status: number | undefined, healthy: boolean): ServerProfile | 'probe-sync' | undefined {
  if (status !== undefined && status >= 200 && status < 300 && healthy) return 'inbetweenies';
  if (status === 404 || status === 405 || status === 501) return 'probe-sync';
  return undefined;
}

/** The stored watermark as the server needs it: naive UTC for a server that compares naive timestamps. */
export function lastSyncFor(traits: PeerTraits, lastSync: string | null): string | null {
  if (lastSync === null || !traits.naiveTimestamps) return lastSync;
  const us = parseTimestamp(lastSync);
  return us === undefined ? lastSync : formatNaiveTimestamp(us);
}

/** A timestamp as the server needs it. */
export function timestampFor(traits: PeerTraits, text: string): string {
  if (!traits.naiveTimestamps) return text;
  const us = parseTimestamp(text);
  return us === undefined ? text : formatNaiveTimestamp(us);
}

/** A sync_request in the server's shape: explicit `entity_types`, naive `last_sync` where needed. */
export function shapeSyncRequest(traits: PeerTraits, request: SyncRequest): SyncRequest {
  const shaped: SyncRequest = { ...request, last_sync: lastSyncFor(traits, request.last_sync ?? null) };
  return traits.entityTypes === undefined ? shaped : { ...shaped, entity_types: [...traits.entityTypes] };
}

/** Whether a pending change of this type and operation can be pushed to the server at all. */
export function canPush(traits: PeerTraits, entityType: EntityType, operation: 'create' | 'update' | 'delete'): boolean {
  return traits.storable.includes(entityType) && (operation !== 'delete' || traits.appliesDeletes);
}

/**
 * A pushed change in the server's shape. FunkyGibbon v1: `data.sync_id` (its key for the version: without it the
 * change is dropped) and `data.house_id` (without it, 500), naive `updated_at` in the envelope and in `data`.
 */
export function shapePushChange(traits: PeerTraits, change: WirePushChange, houseId: string | undefined): WirePushChange {
  if (!traits.needsHouseId && !traits.naiveTimestamps) return change;
  const data: Record<string, unknown> = { ...(change.data ?? {}) };
  const updatedAt = change.updated_at === undefined ? undefined : timestampFor(traits, change.updated_at);
  if (updatedAt !== undefined) data.updated_at = updatedAt;
  if (traits.needsHouseId) {
    data.sync_id = change.sync_id ?? change.client_sync_id;
    if (data.house_id === undefined && houseId !== undefined) data.house_id = houseId;
  }
  return { ...change, data, ...(updatedAt === undefined ? {} : { updated_at: updatedAt }) };
}

/**
 * A pulled change as this gateway reads it: FunkyGibbon v1 marks deletes with `data.is_deleted: true` on an
 * `update`; `house_id` is kept (it is what pushes need), the other fields it adds (`room_name`, `house_name`,
 * `state_json`, `version`, …) stay in `data` as unknown fields.
 */
export function readPulledChange(change: WireChange): WireChange {
  if (change.data.is_deleted === true && change.operation !== 'delete') return { ...change, operation: 'delete' };
  return change;
}

/** The first `house_id` named by pulled changes (FunkyGibbon v1 puts it in every room's and device's data). */
export function houseIdOf(changes: readonly WireChange[]): string | undefined {
  for (const change of changes) {
    const house = change.data.house_id;
    if (typeof house === 'string' && house.length > 0 && house.length <= 256) return house;
  }
  return undefined;
}

const Id = z.string().min(1).max(256);

/**
 * A sync_result as any seed server sends it: the seed's §4 example has entries without `entity_type` / `entity_id`
 * (FunkyGibbon v1 sends them so); the client matches entries by `client_sync_id` only.
 */
export const PeerAppliedSchema = z.object({
  client_sync_id: Id,
  server_sync_id: Id.nullable().optional(),
  status: z.enum(['applied', 'conflict', 'rejected']),
  entity_type: z.string().max(64).optional(),
  entity_id: Id.optional(),
  error: z.object({ code: z.string().max(64), message: z.string().max(1000) }).optional(),
});
export const PeerSyncResultSchema = z.object({
  type: z.literal('sync_result'),
  applied: z.array(PeerAppliedSchema),
  conflicts: z.array(ConflictSchema).default([]),
  server_time: TimestampSchema.optional(),
});
export type PeerSyncResult = z.infer<typeof PeerSyncResultSchema>;

/** The two ack answers: this protocol's `sync_ack_result` and FunkyGibbon v1's `sync_ack_response`. */
export const PeerAckAnswerSchema = z.union([
  z.object({ type: z.literal('sync_ack_result'), acknowledged: z.boolean(), server_time: TimestampSchema }),
  z.object({ type: z.literal('sync_ack_response'), status: z.string().max(64), server_time: TimestampSchema.optional() }),
]);
export type PeerAckAnswer = z.infer<typeof PeerAckAnswerSchema>;

/** Whether an ack answer says the ack was taken. */
export function ackAccepted(answer: PeerAckAnswer): boolean {
  return answer.type === 'sync_ack_result' ? answer.acknowledged : answer.status === 'acknowledged';
}

/**
 * Whether an error answer to a gzipped request means "no gzip here": 415 always; 400 when the body is not this
 * protocol's error (FunkyGibbon v1: `{"detail":"There was an error parsing the body"}`) — a 400 with a protocol error
 * code is about the content, and the same content sent plain would fail the same way.
 */
export function refusedGzip(status: number, body: unknown): boolean {
  if (status === 415) return true;
  return status === 400 && !ErrorBodySchema.safeParse(body).success;
}


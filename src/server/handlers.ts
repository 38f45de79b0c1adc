/**
 * Endpoint logic (seed §Message Formats, §Server Endpoints; docs/protocol.md §Endpoints): each takes the parsed JSON
 * body and the authenticated client and returns a reply, or throws a ProtocolError that becomes the error body.
 */
import type { z } from 'zod';
import { ProtocolError } from '../errors.js';
import {
  ENTITY_PRIORITY,
  RefreshRequestSchema,
  SyncAckSchema,
  SyncPushSchema,
  SyncRequestSchema,
  TokenRequestSchema,
  describeIssues,
  DIGEST_BUCKETS,
  formatTimestamp,
  normaliseEntityType,
  parseTimestamp,
  type HealthResponse,
  type LiveInfo,
  type Micros,
  type SyncAckResult,
  type SyncRequest,
  type SyncResult,
  type TokenResponse,
} from '../protocol/index.js';
import type { RateLimitedLog } from '../util/rate-limited-log.js';
import { decideAck, decodeLegacyPush, futureLastSync, splitEntityTypes, type IssuedToClients } from './compat.js';
import type { ServerConfig } from './config.js';
import type { ServerMetrics } from './metrics.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { jsonReply, type Reply } from './http/io.js';
import type { ChangeNotifier, DeltaAnswer, LiveOutcome } from './live/index.js';
import type { ClientRecord, DeltaPage, IssuedTokens, OpenPageQuery, SyncStore } from './store/contract.js';
import { ALL_TYPES_MASK, type PagePosition } from './store/pull.js';

export const SERVER_VERSION = '0.1.0';

export interface HandlerDeps {
  readonly store: SyncStore;
  readonly config: ServerConfig;
  /** Told of every push that wrote something, so held live waits of the home wake up. */
  readonly changes: ChangeNotifier;
  /** Counts clamped changes, history records and digest reads (absent in tools that run no server). */
  readonly metrics?: ServerMetrics;
  /** The original Python clients' spellings (compat.ts): the last watermark issued per client, and their log lines. */
  readonly compat: { readonly issued: IssuedToClients; readonly notes: RateLimitedLog };
}

/** A sync endpoint: the parsed body of a request whose bearer token (and signature, if any) verified. */
export type SyncHandler = (deps: HandlerDeps, client: ClientRecord, body: unknown) => Promise<Reply>;
/** An auth endpoint; `signedBy` is the client id of a verified request signature, if any. */
export type AuthHandler = (deps: HandlerDeps, body: unknown, signedBy: string | undefined) => Promise<Reply>;

function parse<T extends z.ZodType>(schema: T, body: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new ProtocolError('BAD_REQUEST', `invalid ${what}: ${describeIssues(parsed.error).join('; ')}`);
  }
  return parsed.data;
}

function checkClient(messageClientId: string, client: ClientRecord): void {
  if (messageClientId !== client.clientId) {
    // Naming the token's own client tells its holder which client_id to send (a client started with its own uuid).
    throw new ProtocolError('FORBIDDEN', `client_id does not match the authenticated client (this token is ${client.clientId}'s)`);
  }
}

/** The types asked for; names the server does not store add nothing (only unknown names: an empty delta). */
function typesMask(types: readonly string[], ignored: number): number {
  if (types.length === 0) return ignored === 0 ? ALL_TYPES_MASK : 0;
  let mask = 0;
  for (const name of types) {
    const type = normaliseEntityType(name);
    if (type !== undefined) mask |= 1 << ENTITY_PRIORITY[type];
  }
  return mask;
}

interface SyncWindow {
  readonly w: Micros | null;
  readonly h: Micros;
  readonly after: PagePosition | null;
  /** The home digest as of H, computed with the first page and carried by the cursor. */
  readonly digest: string | undefined;
  /** The per-bucket digests as of H (first page only). */
  readonly digestBuckets: readonly string[] | undefined;
  readonly page: DeltaPage;
  /** A naive last_sync later than anything issued (a client's clock): answered as a full resync (compat.ts). */
  readonly resync: boolean;
}

function futureWatermark(what: string): ProtocolError {
  return new ProtocolError(
    'INVALID_SYNC_STATE',
    `${what} is later than any server_time this server issued to this home (restored from a backup?): do a full resync`,
    { reason: 'future_watermark' },
  );
}

/** A last_sync older than the home's purged tombstones cannot give a complete delta (docs/protocol.md §Tombstones). */
function purged(): ProtocolError {
  return new ProtocolError('INVALID_SYNC_STATE', 'last_sync is older than the tombstone retention horizon: do a full resync (last_sync null)', {
    reason: 'purged',
  });
}

/**
 * The delta window (W, H] of a request and its page (docs/protocol.md §Watermark and delta): from its cursor, or a
 * fresh watermark issued with the first page. A watermark a client presents (last_sync, a cursor's H) must not be later
 * than what was issued to the client's home: it is only compared, never recorded — nothing a client sends moves any
 * clock. Checks come first: a refused request issues nothing.
 */
async function syncWindow(store: SyncStore, client: ClientRecord, msg: SyncRequest, query: Omit<OpenPageQuery, 'w'>): Promise<SyncWindow> {
  if (msg.cursor) {
    const c = decodeCursor(store.cursorKey, client.clientId, msg.cursor);
    if (c.h > (await store.issuedBound(client.homeId))) throw futureWatermark('the cursor');
    const after = { p: c.p, s: c.s };
    const page = await store.page({ ...query, w: c.w, h: c.h, after });
    return { w: c.w, h: c.h, after, page, resync: false, digest: c.d, digestBuckets: undefined };
  }
  let w = msg.last_sync ? (parseTimestamp(msg.last_sync) ?? null) : null;
  let resync = false;
  if (w !== null && msg.last_sync && futureLastSync(msg.last_sync) === 'full' && w > (await store.issuedBound(client.homeId))) {
    // Seed §Error Codes INVALID_SYNC_STATE ("client too far behind"), answered with the full resync it calls for: a
    // naive last_sync is the client's own clock, never a value this server issued. Only compared, never recorded.
    w = null;
    resync = true;
  }
  if (msg.buckets !== undefined && w !== null) {
    throw new ProtocolError('BAD_REQUEST', 'buckets (a digest repair) needs last_sync null: it reads the buckets whole');
  }
  // The digest is read with the first page, under the same lock: it is the digest of exactly the rows with seq <= H.
  const opened = await store.openPage({ ...query, w });
  if (!opened.ok) throw opened.reason === 'purged' ? purged() : futureWatermark('last_sync');
  return { w, h: opened.h, after: null, page: opened.page, resync, digest: opened.digest?.home, digestBuckets: opened.digest?.buckets };
}

/** The extensions a sync_request announced (docs/protocol.md §Capabilities). */
function capsOf(msg: SyncRequest): { partial: boolean; digest: boolean; any: boolean } {
  const caps = msg.caps ?? [];
  return { partial: caps.includes('partial'), digest: caps.includes('digest'), any: caps.length > 0 };
}

/** sync_request → sync_delta (seed §1, §2; docs/protocol.md §Watermark and delta, §Pagination). */
export async function handleSyncRequest(deps: HandlerDeps, client: ClientRecord, body: unknown): Promise<Reply> {
  return (await answerSyncRequest(deps, client, parseSyncRequest(body, client))).reply;
}

export function parseSyncRequest(body: unknown, client: ClientRecord): SyncRequest {
  const msg = parse(SyncRequestSchema, body, 'sync_request');
  checkClient(msg.client_id, client);
  return msg;
}

/**
 * The delta of a parsed sync_request, with a fresh watermark; `live` (the live-wait extension) adds how the wait
 * ended to the delta. Called once for a plain request, and again on every wake-up of a held one.
 */
export async function answerSyncRequest(
  deps: HandlerDeps,
  client: ClientRecord,
  msg: SyncRequest,
  live?: LiveOutcome,
): Promise<DeltaAnswer> {
  const { store, config } = deps;
  const caps = capsOf(msg);
  const types = splitEntityTypes(msg.entity_types);
  if (types.ignored.length > 0) {
    deps.compat.notes.record('ignored_entity_types', 'sync_request names entity types this server does not store: ignored', {
      client: client.clientId,
      ignored: types.ignored,
    });
  }
  const { w, h, after, page, resync, digest, digestBuckets } = await syncWindow(store, client, msg, {
    homeId: client.homeId,
    clientId: client.clientId,
    typesMask: typesMask(types.known, types.ignored.length),
    // A client that announced extensions gets tombstones unless it says include_deleted: false.
    includeDeleted: msg.include_deleted ?? caps.any,
    // The digest covers the whole home: only for a request of every type, and not for a repair of some buckets.
    digest: caps.digest && types.ignored.length === 0 && typesMask(types.known, 0) === ALL_TYPES_MASK && msg.buckets === undefined,
    limit: Math.min(config.pageSize, msg.limit ?? config.pageSize),
    partial: caps.partial,
    ...(msg.buckets === undefined ? {} : { buckets: msg.buckets }),
  });
  // Read with the page, in its snapshot: a purge between the pages of a sync is seen, never a half delta.
  if (w !== null && w < page.purgedThrough) throw purged();
  deps.compat.issued.note(client.clientId, h);
  if (resync) {
    deps.compat.notes.record('unissued_last_sync', 'naive last_sync later than anything issued (a client clock): full resync', {
      client: client.clientId,
    });
  }
  const conflicts = after === null ? await store.conflicts(client.clientId, w, h, config.pageSize) : [];
  const cursor =
    page.more && page.last !== null
      ? encodeCursor(store.cursorKey, client.clientId, { w, h, p: page.last.p, s: page.last.s, ...(digest === undefined ? {} : { d: digest }) })
      : null;
  const liveInfo: LiveInfo | undefined =
    live === undefined
      ? undefined
      : { reason: live.reason, waited_ms: live.waitedMs, max_wait_seconds: config.live.maxWaitSeconds };
  // A client that announced extensions gets no empty `conflicts`, no `more: false` and no null `cursor` (bytes on
  // every idle poll; they are the defaults, docs/protocol.md §Capabilities).
  const fields = [`"type":"sync_delta"`, `"server_time":"${formatTimestamp(h)}"`, `"changes":[${page.changes.join(',')}]`];
  if (!caps.any || conflicts.length > 0) fields.push(`"conflicts":[${conflicts.join(',')}]`);
  if (!caps.any || page.more) fields.push(`"more":${page.more}`);
  if (!caps.any || cursor !== null) fields.push(`"cursor":${JSON.stringify(cursor)}`);
  // Extensions, present only when they say something (docs/protocol.md §Compatibility, §Live waits).
  if (liveInfo !== undefined) fields.push(`"live":${JSON.stringify(liveInfo)}`);
  if (types.ignored.length > 0) fields.push(`"ignored_entity_types":${JSON.stringify(types.ignored)}`);
  if (resync) fields.push('"resync":{"code":"INVALID_SYNC_STATE","reason":"unissued_last_sync"}');
  if (digest !== undefined && !page.more) {
    fields.push(`"digest":"${digest}"`);
    // Per-bucket digests only on a single-page answer (the cursor carries the home digest alone).
    if (msg.digest_buckets === true && digestBuckets !== undefined) fields.push(`"digest_buckets":${JSON.stringify(digestBuckets)}`);
    deps.metrics?.digests.inc();
  }
  const text = `{${fields.join(',')}}`;
  return { reply: { status: 200, body: text }, empty: page.changes.length === 0 && conflicts.length === 0 };
}

/** sync_push → sync_result (seed §3, §4). */
export async function handleSyncPush(deps: HandlerDeps, client: ClientRecord, body: unknown): Promise<Reply> {
  const { store, config } = deps;
  if (typeof body === 'object' && body !== null && 'changes' in body && Array.isArray(body.changes)) {
    if (body.changes.length > config.maxPushChanges) {
      throw new ProtocolError(
        'PAYLOAD_TOO_LARGE',
        `sync_push carries ${body.changes.length} changes; at most ${config.maxPushChanges} are accepted per push`,
      );
    }
  }
  const msg = parse(SyncPushSchema, body, 'sync_push');
  checkClient(msg.client_id, client);
  // The Blowing-Off spelling of entity states (a JSON-encoded `state`, the device as `entity_id`), decoded (compat.ts).
  const { changes, decoded } = decodeLegacyPush(msg.changes);
  if (decoded > 0) {
    deps.compat.notes.record('decoded_states', 'entity_state changes in the Blowing-Off spelling decoded', {
      client: client.clientId,
      decoded,
    });
  }
  const clampToleranceUs = config.clamp.enabled ? Math.round(config.clamp.toleranceSeconds * 1_000_000) : undefined;
  const ctx = { homeId: client.homeId, clientId: client.clientId, ...(clampToleranceUs === undefined ? {} : { clampToleranceUs }) };
  const result = await store.applyPush(ctx, changes);
  if (result.clamped > 0) deps.metrics?.clamped.inc(result.clamped);
  if (result.history > 0) deps.metrics?.history.inc(result.history);
  // Committed: wake the home's live waits (docs/protocol.md §Live waits) in this process; on PostgreSQL the other
  // instances hear the NOTIFY that rode the push's commit.
  if (result.wrote) {
    deps.changes.publish({ homeId: client.homeId, originClientId: client.clientId, seq: result.serverTime });
  }
  const reply: SyncResult = {
    type: 'sync_result',
    applied: result.applied,
    conflicts: result.conflicts,
    server_time: formatTimestamp(await store.serverTimeFor(client.homeId)),
  };
  return jsonReply(200, reply);
}

/** sync_ack → sync_ack_result (seed §5): records the client's last completed sync, used by the tombstone purge. */
export async function handleSyncAck(deps: HandlerDeps, client: ClientRecord, body: unknown): Promise<Reply> {
  const { store } = deps;
  const msg = parse(SyncAckSchema, body, 'sync_ack');
  checkClient(msg.client_id, client);
  const decision = decideAck(msg.sync_completed_at, await store.issuedBound(client.homeId), deps.compat.issued.lastIssued(client.clientId));
  if (decision.kind === 'refuse') {
    throw new ProtocolError('BAD_REQUEST', 'sync_completed_at is later than any server_time this server issued to this home', {
      reason: 'future_ack',
    });
  }
  // A clamped ack (a client's clock just after its sync) records the last server_time issued to that client, never
  // its own value: an ack decides which tombstones may be purged, so it must not claim more than the client got.
  if (decision.watermark !== undefined) await store.recordAck(client.clientId, decision.watermark);
  if (decision.kind === 'clamp') {
    deps.compat.notes.record('clamped_ack', 'naive sync_completed_at slightly ahead of the last server_time: clamped', {
      client: client.clientId,
    });
  }
  const reply: SyncAckResult = {
    type: 'sync_ack_result',
    acknowledged: true,
    server_time: formatTimestamp(await store.serverTimeFor(client.homeId)),
    ...(decision.kind === 'clamp' ? { clamped: true } : {}),
  };
  return jsonReply(200, reply);
}

function tokenReply(tokens: IssuedTokens, client: ClientRecord): Reply {
  const reply: TokenResponse = {
    access_token: tokens.accessToken,
    token_type: 'Bearer',
    expires_in: tokens.accessTtlSeconds,
    refresh_token: tokens.refreshToken,
    refresh_expires_in: tokens.refreshTtlSeconds,
    home_id: client.homeId,
  };
  return jsonReply(200, reply);
}

/** POST /auth/token. `signedBy` is the client id of a verified request signature, if any. */
export async function handleToken(deps: HandlerDeps, body: unknown, signedBy: string | undefined): Promise<Reply> {
  const msg = parse(TokenRequestSchema, body, 'token request');
  if (signedBy !== undefined && signedBy !== msg.client_id) {
    throw new ProtocolError('BAD_SIGNATURE', 'x-inbetweenies-client-id does not match client_id', { reason: 'client_id' });
  }
  // An unknown client id and a wrong secret get the same answer, in the same time (accounts.authenticate).
  const client = await deps.store.authenticate(msg.client_id, msg.client_secret);
  if (client === undefined) throw new ProtocolError('UNAUTHORIZED', 'invalid client credentials', { reason: 'bad_credentials' });
  return tokenReply(await deps.store.issueTokens(client.clientId, deps.config.tokens), client);
}

/** POST /auth/refresh: a new pair; the old refresh token and the access token issued with it are revoked. */
export async function handleRefresh(deps: HandlerDeps, body: unknown, signedBy: string | undefined): Promise<Reply> {
  const msg = parse(RefreshRequestSchema, body, 'refresh request');
  const lookup = await deps.store.lookupToken(msg.refresh_token, 'refresh');
  if (!lookup.ok) {
    throw lookup.reason === 'expired'
      ? new ProtocolError('AUTH_EXPIRED', 'refresh token expired: authenticate with the client credentials', {
          reason: 'refresh_expired',
        })
      : new ProtocolError('UNAUTHORIZED', 'unknown refresh token', { reason: 'unknown_refresh' });
  }
  if (signedBy !== undefined && signedBy !== lookup.client.clientId) {
    throw new ProtocolError('BAD_SIGNATURE', 'the refresh token belongs to another client than the signature', {
      reason: 'client_id',
    });
  }
  const tokens = await deps.store.rotateRefresh(msg.refresh_token, lookup.client.clientId, deps.config.tokens);
  // Consumed meanwhile by a concurrent rotation (on any instance): that one won, this token is spent.
  if (tokens === undefined) throw new ProtocolError('UNAUTHORIZED', 'unknown refresh token', { reason: 'unknown_refresh' });
  return tokenReply(tokens, lookup.client);
}

export async function handleHealth(deps: HandlerDeps): Promise<Reply> {
  const live = deps.config.live;
  const reply: HealthResponse = {
    status: 'ok',
    version: SERVER_VERSION,
    server_time: formatTimestamp(await deps.store.nowMicros()),
    // Extensions, additive: a gateway that finds no live_wait here (or a 404: a server without health) polls.
    capabilities: {
      ...(live.enabled ? { live_wait: { max_wait_seconds: live.maxWaitSeconds } } : {}),
      partial_state: {},
      digest: { buckets: DIGEST_BUCKETS },
      history: { max_limit: deps.config.history.maxPageSize },
      ...(deps.config.clamp.enabled ? { clamp: { tolerance_seconds: deps.config.clamp.toleranceSeconds } } : {}),
    },
  };
  return jsonReply(200, reply);
}

/**
 * Phases 1–2 of a cycle (seed §Sync Flow): sync_request with the stored watermark, then every sync_delta page until
 * `more` is false (docs/protocol.md §Pagination), each checked here and applied atomically by the store's writer
 * (delta-apply.ts). INVALID_SYNC_STATE (409: the server was restored or purged tombstones we never saw) → a full
 * resync from last_sync null that reconciles (docs/protocol.md §Tombstones); so does the operator's full resync.
 *
 * A live wait (docs/protocol.md §Live waits, an extension) is this same pull with `wait` on its first request: the
 * server holds it until the home changes; the request gets an HTTP timeout of its own (the wait plus a margin, so a
 * dead connection is noticed within that bound) and can be aborted at once. Only the unheld part of its round trip
 * is a clock sample.
 */
import { GatewayError, SyncHttpError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  DATA_SCHEMAS,
  describeIssues,
  normaliseEntityType,
  parseTimestamp,
  splitEnvelopeFields,
  SyncDeltaSchema,
  type LiveInfo,
  type SyncDelta,
  type SyncRequest,
  type WireChange,
} from '../protocol/index.js';
import type { GatewayStore } from '../store/index.js';
import type { ServerClock } from './clock.js';
import { conflictRecordOf } from './conflict-records.js';
import { unheldRoundTrip } from './live.js';
import { APPLY_DELTA_PAGE, remoteKey, type DeltaOutcome, type RemoteChange } from './delta-apply.js';
import { Progress } from './progress.js';
import type { PhaseDeps } from './phase.js';

export const SYNC_REQUEST_PATH = '/api/v1/sync/request';

export interface PullDeps extends PhaseDeps {
  readonly store: Pick<GatewayStore, 'relaxed' | 'syncState'> & { readonly outbox: Pick<GatewayStore['outbox'], 'count'> };
  readonly clock: ServerClock;
  readonly pageLimit: number | undefined;
  /** Pull everything from last_sync null and reconcile (operator's full resync). */
  readonly full: boolean;
  readonly nowMs: () => number;
  /** A live wait: the first request asks to be held up to `seconds`, with its own HTTP timeout; `signal` aborts it. */
  readonly wait?: { readonly seconds: number; readonly timeoutMs: number; readonly signal?: AbortSignal };
  /** Keys of entities a push result decided after a page watermarked `serverMicros` (settlements.ts). */
  readonly settledAfter?: (serverMicros: number) => string[];
  /** Send no `caps` (the client speaks only the seed). */
  readonly seedOnly?: boolean;
  /** Ask for the per-bucket digests whatever is pending (a home digest that did not match). */
  readonly digestBuckets?: boolean;
  /** A digest repair: the whole content of these buckets, from last_sync null (docs/protocol.md §Convergence digest). */
  readonly repairBuckets?: readonly number[];
  /** The server profile's shapes (peer-profile.ts; default: this protocol's, unchanged). */
  readonly peer?: PullPeer;
}

/** How a server profile shapes the pull (docs/protocol.md §Compatibility). */
export interface PullPeer {
  /** The request in the server's shape (explicit entity_types, naive last_sync). */
  shape(request: SyncRequest): SyncRequest;
  /** The delta as this gateway reads it (FunkyGibbon v1's `is_deleted`; its house remembered). */
  read(delta: SyncDelta): SyncDelta;
}

export interface PullReport {
  /** Whether the watermark (serverTime) is in the store already: saved with the last page that carried anything. */
  readonly watermarkSaved: boolean;
  readonly pulled: number;
  readonly applied: number;
  readonly conflicts: number;
  readonly pages: number;
  readonly removed: number;
  readonly invalid: number;
  readonly serverTime: string;
  readonly fullResync: boolean;
  /** The first page's `live` when the request asked to wait and the server honoured it. */
  readonly live: LiveInfo | undefined;
  /** The home digest as of serverTime (convergence digest extension), when the server sent it. */
  readonly digest?: string;
  readonly digestBuckets?: readonly string[];
}

/** The extensions this client understands (docs/protocol.md §Capabilities). */
export const CLIENT_CAPS = ['partial', 'digest'];

const MAX_PAGES = 1_000_000;

export async function pull(deps: PullDeps): Promise<PullReport> {
  if (deps.repairBuckets !== undefined) return pullFrom(deps, null);
  const lastSync = deps.full ? null : (deps.store.syncState.get('last_sync') ?? null);
  try {
    return await pullFrom(deps, lastSync);
  } catch (err) {
    if (!(err instanceof SyncHttpError) || err.code !== 'INVALID_SYNC_STATE' || lastSync === null) throw err;
    deps.logger.warn({ lastSync, reason: err.message }, 'server refused our watermark (INVALID_SYNC_STATE): full resync');
    return pullFrom(deps, null);
  }
}

/**
 * Checks pulled changes (entity type, envelope fields, timestamp, data schema) and normalises them for the writer;
 * an unusable one is logged and skipped. `seen` collects the keys of a full resync (before the data check, as the
 * server does have the entity).
 */
export function checkChanges(changes: readonly WireChange[], log: Logger, seen: Set<string> | undefined): { changes: RemoteChange[]; invalid: number } {
  const out: RemoteChange[] = [];
  let invalid = 0;
  for (const change of changes) {
    const entityType = normaliseEntityType(change.entity_type);
    const split = splitEnvelopeFields(change.data);
    const updatedAt = parseTimestamp(change.updated_at);
    if (entityType === undefined || !split.ok || updatedAt === undefined) {
      invalid += 1;
      log.warn({ entityType: change.entity_type, entityId: change.entity_id }, 'pulled change not usable, skipped');
      continue;
    }
    seen?.add(remoteKey(entityType, change.entity_id));
    const deleted = change.operation === 'delete';
    const body = split.value.body;
    if (!deleted) {
      const valid = DATA_SCHEMAS[entityType].safeParse(body);
      if (!valid.success) {
        invalid += 1;
        log.warn({ entityType, entityId: change.entity_id, problems: describeIssues(valid.error) }, 'pulled change has invalid data, skipped');
        continue;
      }
    }
    const partial = change.partial === true && entityType === 'entity_state' ? { partial: true, removedAttributes: change.removed_attributes ?? [] } : {};
    out.push({ entityType, entityId: change.entity_id, operation: change.operation, body, updatedAt, updatedAtText: change.updated_at, syncId: change.sync_id, deleted, ...partial });
  }
  return { changes: out, invalid };
}

/** The extension fields of a request (docs/protocol.md §Capabilities). */
function extensionFields(deps: PullDeps, cursor: string | undefined): Partial<SyncRequest> {
  // Per-bucket digests only to narrow a home digest that differed: a busy cycle (something pending) skips the check
  // rather than paying some 350 bytes for the buckets every time.
  const wantBuckets = cursor === undefined && deps.repairBuckets === undefined && deps.digestBuckets === true;
  return {
    caps: CLIENT_CAPS,
    ...(deps.repairBuckets === undefined ? {} : { buckets: [...deps.repairBuckets] }),
    ...(wantBuckets ? { digest_buckets: true } : {}),
  };
}

async function pullFrom(deps: PullDeps, lastSync: string | null): Promise<PullReport> {
  const seen = lastSync === null ? new Set<string>() : undefined;
  const progress = new Progress({ logger: deps.logger, what: seen ? 'full sync' : 'pull', everyMs: deps.progressEveryMs });
  const tally = { pulled: 0, applied: 0, conflicts: 0, pages: 0, removed: 0, invalid: 0 };
  // A full resync is never held: it must come back with everything at once.
  const wait = lastSync === null ? undefined : deps.wait;
  let cursor: string | undefined;
  let live: LiveInfo | undefined;
  for (;;) {
    const request: SyncRequest = {
      type: 'sync_request',
      client_id: deps.clientId,
      last_sync: lastSync,
      // A delta must carry deletes; a full sync reconciles deletes by absence instead (delta-apply.ts). With `caps`
      // the server sends tombstones by default: the field is left out then (bytes on every poll).
      ...(lastSync === null ? { include_deleted: false } : deps.seedOnly === true ? { include_deleted: true } : {}),
      ...(cursor === undefined ? {} : { cursor }),
      ...(deps.pageLimit === undefined ? {} : { limit: deps.pageLimit }),
      ...(wait === undefined || cursor !== undefined ? {} : { wait: wait.seconds }),
      // Extensions (docs/protocol.md §Capabilities): partial states and the convergence digest; the per-bucket
      // digests only while something is pending (those buckets are left out of the comparison).
      ...(deps.seedOnly === true ? {} : extensionFields(deps, cursor)),
    };
    const held = wait !== undefined && cursor === undefined ? { timeoutMs: wait.timeoutMs } : {};
    const signal = wait?.signal === undefined ? {} : { signal: wait.signal };
    const body = deps.peer === undefined ? request : deps.peer.shape(request);
    const answer = await deps.call({ method: 'POST', path: SYNC_REQUEST_PATH, body, schema: SyncDeltaSchema, ...held, ...signal });
    const { sentAtMs, receivedAtMs, serverDateMs } = answer;
    const delta = deps.peer === undefined ? answer.value : deps.peer.read(answer.value);
    deps.fault('after_request');
    if (tally.pages === 0) {
      live = wait === undefined ? undefined : delta.live;
      // Every page repeats the first page's server_time, so only the first round trip is a clock sample.
      const serverMicros = parseTimestamp(delta.server_time);
      const trip = unheldRoundTrip(sentAtMs, receivedAtMs, live);
      if (serverMicros !== undefined) deps.clock.observe(serverMicros, trip.sentAtMs, trip.receivedAtMs, serverDateMs);
    }
    if (delta.more && (delta.cursor === undefined || delta.cursor === null)) {
      throw new GatewayError('BAD_RESPONSE', 'sync_delta says more=true without a cursor');
    }
    const outcome = await applyPage(deps, delta, seen);
    if (delta.more) deps.fault('during_delta_apply');
    tally.pages += 1;
    tally.pulled += delta.changes.length;
    tally.applied += outcome.applied;
    tally.conflicts += outcome.conflicts;
    tally.removed += outcome.removed;
    tally.invalid += outcome.invalid;
    if (outcome.removed > 0) deps.logger.info({ removed: outcome.removed }, 'full resync removed local entities the server no longer has');
    if (outcome.commands.length > 0) deps.emit(outcome.commands);
    progress.add(delta.changes.length, { pages: tally.pages });
    if (!delta.more) {
      progress.finish({ pages: tally.pages });
      const digest = delta.digest === undefined ? {} : { digest: delta.digest, ...(delta.digest_buckets ? { digestBuckets: delta.digest_buckets } : {}) };
      return { ...tally, serverTime: delta.server_time, fullResync: seen !== undefined && deps.repairBuckets === undefined, live, watermarkSaved: outcome.written, ...digest };
    }
    if (tally.pages >= MAX_PAGES) throw new GatewayError('BAD_RESPONSE', `sync_delta still says more after ${MAX_PAGES} pages`);
    cursor = delta.cursor ?? undefined;
  }
}

/** Checks a page and applies it in one transaction of the store's writer. */
async function applyPage(deps: PullDeps, delta: SyncDelta, seen: Set<string> | undefined): Promise<DeltaOutcome & { invalid: number; written: boolean }> {
  const checked = checkChanges(delta.changes, deps.logger, seen);
  const serverMicros = parseTimestamp(delta.server_time);
  // Computed right before the program is queued: a push result recorded later is applied after this page.
  const settledByPush = serverMicros === undefined ? [] : (deps.settledAfter?.(serverMicros) ?? []);
  // An idle page (nothing to apply, record or reconcile; push settlements only bear on pulled changes) writes nothing:
  // its watermark is left for the client to save when it matters (before an ack; client.ts), sparing the SD card a
  // commit per poll or live wait.
  if (delta.changes.length === 0 && delta.conflicts.length === 0 && seen === undefined) {
    return { applied: 0, echoes: 0, superseded: 0, conflicts: 0, removed: 0, commands: [], invalid: checked.invalid, written: false };
  }
  const outcome = await deps.store.relaxed(APPLY_DELTA_PAGE, {
    changes: checked.changes,
    conflicts: delta.conflicts.map(conflictRecordOf),
    serverTime: delta.server_time,
    last: !delta.more,
    ...(seen !== undefined && !delta.more ? { reconcileSeen: [...seen] } : {}),
    nowMs: deps.nowMs(),
    ...(settledByPush.length > 0 ? { settledByPush } : {}),
    ...(deps.repairBuckets === undefined ? {} : { repairBuckets: [...deps.repairBuckets] }),
  });
  return { ...outcome, invalid: checked.invalid, written: true };
}

/**
 * Phases 3–4 of a cycle (seed §Sync Flow): sync_push of the outbox in batches of at most 1000 (seed §Batching, states
 * first), each sync_result matched to what was pushed here and applied at once by the store's writer (push-apply.ts).
 * A push whose response is lost (connection cut, timeout) is sent again with the same client_sync_ids: the server's
 * idempotency answers with the stored result and applies nothing twice (docs/protocol.md §Idempotency). If that retry
 * fails too the cycle fails; the rows stay in the outbox.
 */
import { GatewayError, SyncHttpError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  formatTimestamp,
  normaliseEntityType,
  parseTimestamp,
  splitEnvelopeFields,
  SyncResultSchema,
  type SyncPush,
  type SyncResult,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
} from '../protocol/index.js';
import type { GatewayStore } from '../store/index.js';
import type { PendingChange, PendingFilter } from '../store/types.js';
import { PeerSyncResultSchema, type PeerSyncResult } from './peer-profile.js';
import { conflictRecordOf } from './conflict-records.js';
import { APPLY_PUSH_RESULT, type PushDecision, type PushedVersion, type ServerWinner } from './push-apply.js';
import { Progress } from './progress.js';
import type { PhaseDeps } from './phase.js';
import type { CallResult } from './transport.js';

export const SYNC_PUSH_PATH = '/api/v1/sync/push';

export interface PushDeps extends PhaseDeps {
  readonly store: Pick<GatewayStore, 'relaxed' | 'outbox'>;
  readonly batchSize: number;
  readonly nowMs: () => number;
  /**
   * Told, right before a result is queued for the store, which entities it decided (applied, or lost to the server's
   * version) and the result's server_time (settlements.ts: a delta page computed earlier must not undo them).
   */
  readonly settle?: (decided: readonly PushedVersion[], serverMicros: number) => void;
  /** The server merges partial entity_states (its health announced `partial_state`): send only changed attributes. */
  readonly partial?: boolean;
  /** The server profile's say (docs/protocol.md §Compatibility; default: every change, this protocol's shape). */
  readonly peer?: PushPeer;
}

/** How a server profile shapes the push (peer-profile.ts). */
export interface PushPeer {
  /** The pending changes the server can take; undefined: all. The others stay pending. */
  readonly only: PendingFilter | undefined;
  /** Whether anything can be pushed now (FunkyGibbon v1 needs a house to push into). */
  ready(): boolean;
  shape(change: WirePushChange): WirePushChange;
  /** The server answered none of a batch (`applied: []`): never success, the changes stay pending. */
  unanswered(count: number): void;
  /** A push the server refused with a 5xx: true when the cycle goes on without it (the changes stay pending). */
  refused(err: SyncHttpError, count: number): boolean;
  /** A batch was answered: a problem reported by `unanswered` / `refused` is gone. */
  answered(): void;
}

export interface PushReport {
  readonly pushed: number;
  readonly applied: number;
  readonly conflicts: number;
  readonly rejected: number;
  readonly batches: number;
}

/**
 * The wire form of a pending change. With `partial` (the server announced attribute-level state, docs/protocol.md)
 * an entity_state update whose changed attributes are known carries only those: the seed's "field omission for
 * unchanged values" (§Compression); the server merges them into the state it holds.
 */
export function toWireChange(change: PendingChange, options?: { readonly partial?: boolean }): WirePushChange {
  const names = change.attributes;
  if (options?.partial === true && names && change.entityType === 'entity_state' && change.operation === 'update') {
    const state = typeof change.data.state === 'object' && change.data.state !== null ? (change.data.state as Record<string, unknown>) : {};
    const set: Record<string, unknown> = {};
    const removed: string[] = [];
    for (const name of names) {
      if (Object.hasOwn(state, name)) set[name] = state[name];
      else removed.push(name);
    }
    return {
      entity_type: change.entityType,
      entity_id: change.entityId,
      operation: change.operation,
      data: { ...change.data, state: set },
      updated_at: formatTimestamp(change.updatedAt),
      client_sync_id: change.clientSyncId,
      partial: true,
      ...(removed.length > 0 ? { removed_attributes: removed } : {}),
    };
  }
  return {
    entity_type: change.entityType,
    entity_id: change.entityId,
    operation: change.operation,
    // `id` inside data: original Python FunkyGibbon spelling (docs/protocol.md §Compatibility).
    data: { ...change.data, id: change.entityId },
    updated_at: formatTimestamp(change.updatedAt),
    client_sync_id: change.clientSyncId,
  };
}

/** Finds the conflict entry of a pushed change: by client_sync_id when the server gives it, else by entity. */
function indexConflicts(conflicts: readonly WireConflict[]): (change: PendingChange) => WireConflict | undefined {
  const byClientSyncId = new Map<string, WireConflict>();
  const byEntity = new Map<string, WireConflict>();
  for (const conflict of conflicts) {
    if (conflict.client_sync_id !== undefined) byClientSyncId.set(conflict.client_sync_id, conflict);
    const type = normaliseEntityType(conflict.entity_type) ?? conflict.entity_type;
    byEntity.set(`${type}\u0000${conflict.entity_id}`, conflict);
  }
  return (change) => byClientSyncId.get(change.clientSyncId) ?? byEntity.get(`${change.entityType}\u0000${change.entityId}`);
}

/** The server's version of a conflict it won, checked; undefined (logged) when unusable. */
function winnerOf(conflict: WireConflict | undefined, change: PendingChange, log: Logger): ServerWinner | undefined {
  const server = conflict?.server_version;
  if (server === undefined || server === null) return undefined;
  const split = splitEnvelopeFields(server.data);
  const updatedAt = parseTimestamp(server.updated_at);
  if (!split.ok || updatedAt === undefined) {
    log.warn({ entityId: change.entityId, problems: split.ok ? [] : split.problems }, 'unusable server_version');
    return undefined;
  }
  return { data: split.value.body, updatedAt, syncId: server.sync_id, deleted: server.deleted };
}

function rejection(change: PendingChange, entry: Pick<WireApplied, 'error'>, log: Logger): PushDecision {
  const code = entry.error?.code ?? 'REJECTED';
  const message = entry.error?.message ?? 'rejected by the server';
  log.warn(
    { entityType: change.entityType, entityId: change.entityId, clientSyncId: change.clientSyncId, code, message },
    'server rejected a pushed change; dropped from the outbox and recorded in conflicts',
  );
  return {
    status: 'rejected',
    version: versionOf(change),
    record: {
      entityType: change.entityType,
      entityId: change.entityId,
      type: 'REJECTED',
      reason: `${code}: ${message}`,
      resolution: 'rejected',
      serverVersion: null,
      clientVersion: { operation: change.operation, data: change.data, updated_at: change.updatedAt, client_sync_id: change.clientSyncId },
    },
  };
}

function versionOf(change: PendingChange): PushDecision['version'] {
  return { entityType: change.entityType, entityId: change.entityId, clientSyncId: change.clientSyncId, updatedAt: change.updatedAt };
}

/** Matches a sync_result to what was pushed: one decision per answered change, by client_sync_id. */
export function decide(result: PeerSyncResult, pushed: readonly PendingChange[], log: Logger): { decisions: PushDecision[]; unanswered: number } {
  const byId = new Map(pushed.map((change) => [change.clientSyncId, change]));
  const conflictFor = indexConflicts(result.conflicts);
  const decisions: PushDecision[] = [];
  const answered = new Set<string>();
  for (const entry of result.applied) {
    const change = byId.get(entry.client_sync_id);
    if (change === undefined) {
      log.warn({ clientSyncId: entry.client_sync_id }, 'sync_result names a change that was not pushed');
      continue;
    }
    answered.add(entry.client_sync_id);
    if (entry.status === 'applied') decisions.push({ status: 'applied', version: versionOf(change), serverSyncId: entry.server_sync_id ?? null });
    else if (entry.status === 'conflict') decisions.push({ status: 'conflict', version: versionOf(change), winner: winnerOf(conflictFor(change), change, log) });
    else decisions.push(rejection(change, entry, log));
  }
  return { decisions, unanswered: pushed.length - answered.size };
}

export async function push(deps: PushDeps): Promise<PushReport> {
  const tally = { pushed: 0, applied: 0, conflicts: 0, rejected: 0, batches: 0 };
  // Bound the work to what is pending now (+1 batch), so a device flooding changes cannot keep a cycle going forever.
  let budget = Math.ceil(deps.store.outbox.count() / deps.batchSize) + 1;
  const progress = new Progress({ logger: deps.logger, what: 'push', everyMs: deps.progressEveryMs });
  while (budget > 0) {
    budget -= 1;
    if (deps.peer?.ready() === false) break;
    const batch = deps.store.outbox.take(deps.batchSize, deps.peer?.only);
    if (batch.length === 0) break;
    const wire = batch.map((c) => toWireChange(c, { partial: deps.partial === true }));
    const body: SyncPush = { type: 'sync_push', client_id: deps.clientId, changes: deps.peer === undefined ? wire : wire.map((c) => deps.peer?.shape(c) ?? c) };
    let value: PeerSyncResult;
    try {
      ({ value } = await sendWithRetry(deps, body));
    } catch (err) {
      await deps.store.outbox.recordFailedAttempt(batch).catch((e: unknown) => deps.logger.warn({ err: e }, 'could not count the failed push attempt'));
      if (err instanceof SyncHttpError && deps.peer?.refused(err, batch.length) === true) break;
      throw err;
    }
    deps.fault('after_push_result');
    const { decisions, unanswered } = decide(value, batch, deps.logger);
    // A server that sends no server_time has no live waits either: its pulls never overlap a push (scheduler.ts).
    const serverMicros = value.server_time === undefined ? undefined : parseTimestamp(value.server_time);
    if (serverMicros !== undefined) deps.settle?.(decisions.filter((d) => d.status !== 'rejected').map((d) => d.version), serverMicros);
    const outcome = await deps.store.relaxed(APPLY_PUSH_RESULT, { decisions, serverConflicts: value.conflicts.map(conflictRecordOf), nowMs: deps.nowMs() });
    tally.batches += 1;
    tally.pushed += batch.length;
    for (const d of decisions) tally[d.status === 'applied' ? 'applied' : d.status === 'conflict' ? 'conflicts' : 'rejected'] += 1;
    if (outcome.commands.length > 0) deps.emit(outcome.commands);
    progress.add(batch.length, { batches: tally.batches, pending: deps.store.outbox.count() });
    if (unanswered === batch.length) {
      deps.logger.warn({ batch: batch.length }, 'sync_result answered none of the pushed changes; stopping this push');
      deps.peer?.unanswered(batch.length);
      break;
    }
    deps.peer?.answered();
  }
  progress.finish({ batches: tally.batches });
  return tally;
}

/**
 * The answer is read as the seed has it (§4: entries without `entity_type` / `entity_id`, as FunkyGibbon v1 sends
 * them); entries are matched by `client_sync_id` only.
 */
async function sendWithRetry(deps: PushDeps, body: SyncPush): Promise<CallResult<PeerSyncResult>> {
  const spec = { method: 'POST' as const, path: SYNC_PUSH_PATH, body, schema: PeerSyncResultSchema };
  try {
    return await deps.call(spec);
  } catch (err) {
    if (!(err instanceof GatewayError) || (err.code !== 'TRANSPORT' && err.code !== 'TIMEOUT')) throw err;
    deps.logger.warn({ code: err.code, changes: body.changes.length }, 'push response lost; resending the same client_sync_ids');
    return deps.call(spec);
  }
}

/**
 * Phases 3–4 of a cycle (seed §Sync Flow): sync_push of the outbox in batches of at most 1000 (seed §Batching, states
 * first), each sync_result applied at once (sync-outbox.ts). A push whose response is lost (connection cut, timeout)
 * is sent again with the same client_sync_ids: the server's idempotency answers with the stored result and applies
 * nothing twice (design.md §Idempotency). If that retry fails too the cycle fails; the rows stay in the outbox.
 */
import { GatewayError } from '../errors.js';
import { formatTimestamp, SyncResultSchema, type SyncPush, type SyncResult, type WirePushChange } from '../protocol/index.js';
import type { SyncOutbox } from '../store/sync-outbox.js';
import type { PendingChange } from '../store/types.js';
import { faultPoint } from './fault-points.js';
import { Progress } from './progress.js';
import type { PhaseDeps } from './phase.js';
import type { CallResult } from './transport.js';

export const SYNC_PUSH_PATH = '/api/v1/sync/push';

export interface PushDeps extends PhaseDeps {
  readonly outbox: SyncOutbox;
  readonly batchSize: number;
}

export interface PushReport {
  readonly pushed: number;
  readonly applied: number;
  readonly conflicts: number;
  readonly rejected: number;
  readonly batches: number;
}

export function toWireChange(change: PendingChange): WirePushChange {
  return {
    entity_type: change.entityType,
    entity_id: change.entityId,
    operation: change.operation,
    // `id` inside data: original Python FunkyGibbon spelling (design.md §Compatibility).
    data: { ...change.data, id: change.entityId },
    updated_at: formatTimestamp(change.updatedAt),
    client_sync_id: change.clientSyncId,
  };
}

export async function push(deps: PushDeps): Promise<PushReport> {
  const tally = { pushed: 0, applied: 0, conflicts: 0, rejected: 0, batches: 0 };
  // Bound the work to what is pending now (+1 batch), so a device flooding changes cannot keep a cycle going forever.
  let budget = Math.ceil(deps.outbox.pendingCount() / deps.batchSize) + 1;
  const progress = new Progress({ logger: deps.logger, what: 'push', everyMs: deps.progressEveryMs });
  while (budget > 0) {
    budget -= 1;
    const batch = deps.outbox.takePending(deps.batchSize);
    if (batch.length === 0) break;
    const body: SyncPush = { type: 'sync_push', client_id: deps.clientId, changes: batch.map(toWireChange) };
    let value: SyncResult;
    try {
      ({ value } = await sendWithRetry(deps, body));
    } catch (err) {
      deps.outbox.recordFailedAttempt(batch);
      throw err;
    }
    faultPoint('after_push_result');
    const outcome = deps.outbox.applyPushResult(value, batch);
    tally.batches += 1;
    tally.pushed += batch.length;
    tally.applied += outcome.applied;
    tally.conflicts += outcome.conflicts;
    tally.rejected += outcome.rejected;
    if (outcome.commands.length > 0) deps.emit(outcome.commands);
    progress.add(batch.length, { batches: tally.batches, pending: deps.outbox.pendingCount() });
    if (outcome.unanswered === batch.length) {
      deps.logger.warn({ batch: batch.length }, 'sync_result answered none of the pushed changes; stopping this push');
      break;
    }
  }
  progress.finish({ batches: tally.batches });
  return tally;
}

async function sendWithRetry(deps: PushDeps, body: SyncPush): Promise<CallResult<SyncResult>> {
  const spec = { method: 'POST' as const, path: SYNC_PUSH_PATH, body, schema: SyncResultSchema };
  try {
    return await deps.call(spec);
  } catch (err) {
    if (!(err instanceof GatewayError) || (err.code !== 'TRANSPORT' && err.code !== 'TIMEOUT')) throw err;
    deps.logger.warn({ code: err.code, changes: body.changes.length }, 'push response lost; resending the same client_sync_ids');
    return deps.call(spec);
  }
}

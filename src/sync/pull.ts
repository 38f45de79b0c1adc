/**
 * Phases 1–2 of a cycle (seed §Sync Flow): sync_request with the stored watermark, then every sync_delta page until
 * `more` is false (design.md §Pagination), each applied atomically. INVALID_SYNC_STATE (409: the server was restored
 * or purged tombstones we never saw) → a full resync from last_sync null that reconciles (design.md §Deletes).
 */
import { GatewayError, SyncHttpError } from '../errors.js';
import { parseTimestamp, SyncDeltaSchema, type SyncRequest } from '../protocol/index.js';
import { newFullResyncTracker, type SyncRemote } from '../store/sync-remote.js';
import type { SyncStateRepo } from '../store/sync-state.js';
import type { ServerClock } from './clock.js';
import { faultPoint } from './fault-points.js';
import { Progress } from './progress.js';
import type { PhaseDeps } from './phase.js';

export const SYNC_REQUEST_PATH = '/api/v1/sync/request';

export interface PullDeps extends PhaseDeps {
  readonly remote: SyncRemote;
  readonly state: SyncStateRepo;
  readonly clock: ServerClock;
  readonly pageLimit: number | undefined;
}

export interface PullReport {
  readonly pulled: number;
  readonly applied: number;
  readonly conflicts: number;
  readonly pages: number;
  readonly removed: number;
  readonly serverTime: string;
  readonly fullResync: boolean;
}

const MAX_PAGES = 1_000_000;

export async function pull(deps: PullDeps): Promise<PullReport> {
  const lastSync = deps.state.get('last_sync') ?? null;
  try {
    return await pullFrom(deps, lastSync);
  } catch (err) {
    if (!(err instanceof SyncHttpError) || err.code !== 'INVALID_SYNC_STATE' || lastSync === null) throw err;
    deps.logger.warn({ lastSync, reason: err.message }, 'server refused our watermark (INVALID_SYNC_STATE): full resync');
    return pullFrom(deps, null);
  }
}

async function pullFrom(deps: PullDeps, lastSync: string | null): Promise<PullReport> {
  const full = lastSync === null ? newFullResyncTracker() : undefined;
  const progress = new Progress({ logger: deps.logger, what: full ? 'full sync' : 'pull', everyMs: deps.progressEveryMs });
  const tally = { pulled: 0, applied: 0, conflicts: 0, pages: 0, removed: 0 };
  let cursor: string | undefined;
  for (;;) {
    const request: SyncRequest = {
      type: 'sync_request',
      client_id: deps.clientId,
      last_sync: lastSync,
      // A delta must carry deletes; a full sync reconciles deletes by absence instead (sync-remote.ts).
      include_deleted: lastSync !== null,
      ...(cursor === undefined ? {} : { cursor }),
      ...(deps.pageLimit === undefined ? {} : { limit: deps.pageLimit }),
    };
    const { value: delta, sentAtMs, receivedAtMs, serverDateMs } = await deps.call({ method: 'POST', path: SYNC_REQUEST_PATH, body: request, schema: SyncDeltaSchema });
    faultPoint('after_request');
    if (tally.pages === 0) {
      // design.md §Clock: every page repeats the first page's server_time, so only the first round trip is a sample.
      const serverMicros = parseTimestamp(delta.server_time);
      if (serverMicros !== undefined) deps.clock.observe(serverMicros, sentAtMs, receivedAtMs, serverDateMs);
    }
    if (delta.more && (delta.cursor === undefined || delta.cursor === null)) {
      throw new GatewayError('BAD_RESPONSE', 'sync_delta says more=true without a cursor');
    }
    const outcome = deps.remote.applyRemotePage({
      changes: delta.changes,
      conflicts: delta.conflicts,
      serverTime: delta.server_time,
      last: !delta.more,
      ...(full === undefined ? {} : { fullResync: full }),
    });
    if (delta.more) faultPoint('during_delta_apply');
    tally.pages += 1;
    tally.pulled += delta.changes.length;
    tally.applied += outcome.applied;
    tally.conflicts += outcome.conflicts;
    tally.removed += outcome.removed;
    if (outcome.commands.length > 0) deps.emit(outcome.commands);
    progress.add(delta.changes.length, { pages: tally.pages });
    if (!delta.more) {
      progress.finish({ pages: tally.pages });
      return { ...tally, serverTime: delta.server_time, fullResync: full !== undefined };
    }
    if (tally.pages >= MAX_PAGES) throw new GatewayError('BAD_RESPONSE', `sync_delta still says more after ${MAX_PAGES} pages`);
    cursor = delta.cursor ?? undefined;
  }
}

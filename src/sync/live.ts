/**
 * The client side of live waits (docs/protocol.md §Live waits, an extension of the seed): find out whether a server
 * holds requests (GET /api/v1/health `capabilities.live_wait`), ask a sync_request to be held (`wait`), read every
 * page of the answer, and tell how the wait ended. A server without the capability — the Python FunkyGibbon v1 has
 * no health endpoint at all — is polled as the seed's §Polling says; so is one that answers without `live`.
 */
import { GatewayError, SyncHttpError } from '../errors.js';
import {
  HealthResponseSchema,
  SyncDeltaSchema,
  type LiveInfo,
  type SyncDelta,
  type SyncRequest,
} from '../protocol/index.js';
import type { CallResult, CallSpec } from './transport.js';

const HEALTH_PATH = '/api/v1/health';
const SYNC_REQUEST_PATH = '/api/v1/sync/request';
/** Below common proxy idle timeouts (60 s and more); the server caps it at its own maximum anyway. */
export const DEFAULT_LIVE_WAIT_SECONDS = 25;
/** A held request's HTTP timeout is its wait plus this: a server answers at the end of the wait, not after it. */
export const LIVE_TIMEOUT_MARGIN_MS = 15_000;
const MAX_PAGES = 1_000_000;

export type Caller = <T>(spec: CallSpec<T>) => Promise<CallResult<T>>;

export interface LiveSupport {
  readonly maxWaitSeconds: number;
}

/**
 * Whether the server holds live waits. A 404 (no health endpoint) or a health without the capability is "no";
 * anything else that fails (unreachable, 5xx) is thrown: an unreachable server is not a server without live waits.
 */
export async function probeLiveWait(call: Caller): Promise<LiveSupport | undefined> {
  try {
    const { value } = await call({ method: 'GET', path: HEALTH_PATH, schema: HealthResponseSchema, signed: false });
    const live = value.capabilities?.live_wait;
    return live === undefined ? undefined : { maxWaitSeconds: live.max_wait_seconds };
  } catch (err) {
    if (err instanceof SyncHttpError && (err.status === 404 || err.status === 405)) return undefined;
    throw err;
  }
}

/** The wait to ask for: the wish, never more than the server holds. */
export function liveWaitSeconds(support: LiveSupport, wishSeconds = DEFAULT_LIVE_WAIT_SECONDS): number {
  return Math.min(wishSeconds, support.maxWaitSeconds);
}

/** The HTTP timeout of a held request: its wait plus `marginMs` (a dead connection is noticed within that bound). */
export function liveTimeoutMs(waitSeconds: number, marginMs = LIVE_TIMEOUT_MARGIN_MS): number {
  return Math.ceil(waitSeconds * 1000) + marginMs;
}

/**
 * The part of a live request's round trip that says something about the clock (docs/architecture.md §Scheduler):
 * the server issues the answer's `server_time` when it stops holding, so the held time is taken off the front of the
 * round trip; what is left is the request's way in plus the answer's way out. Without `live`, all of it counts.
 */
export function unheldRoundTrip(sentAtMs: number, receivedAtMs: number, live: LiveInfo | undefined): { sentAtMs: number; receivedAtMs: number } {
  const held = Math.min(Math.max(0, live?.waited_ms ?? 0), Math.max(0, receivedAtMs - sentAtMs));
  return { sentAtMs: sentAtMs + held, receivedAtMs };
}

/** How a live request ended; `unsupported` when the answer carries no `live` (the server ignored `wait`). */
export type LiveEnd = 'data' | 'change' | 'timeout' | 'shutdown' | 'unsupported';

export function liveEnd(live: LiveInfo | undefined): LiveEnd {
  if (live === undefined) return 'unsupported';
  switch (live.reason) {
    case 'data':
    case 'change':
    case 'shutdown':
      return live.reason;
    default:
      return 'timeout'; // docs/protocol.md: an unknown reason is treated like a timeout
  }
}

export interface FetchedDelta {
  readonly changes: SyncDelta['changes'];
  readonly conflicts: SyncDelta['conflicts'];
  /** The watermark of the whole delta: the client's next `last_sync`. */
  readonly serverTime: string;
  readonly pages: number;
  /** The first page's `live`, when the request asked to wait. */
  readonly live: LiveInfo | undefined;
  /** Local epoch ms around the first page (a clock sample: its server_time was issued in between). */
  readonly sentAtMs: number;
  readonly receivedAtMs: number;
}

/**
 * One whole delta: `request` (with `wait` when `waitSeconds` > 0: the first page may be held), then every page by
 * its cursor (never held), until `more` is false.
 */
export async function fetchDelta(call: Caller, request: SyncRequest, waitSeconds = 0): Promise<FetchedDelta> {
  const first: SyncRequest = waitSeconds > 0 ? { ...request, wait: waitSeconds } : request;
  const timeoutMs = waitSeconds > 0 ? liveTimeoutMs(waitSeconds) : undefined;
  const head = await call({
    method: 'POST',
    path: SYNC_REQUEST_PATH,
    body: first,
    schema: SyncDeltaSchema,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  const changes = [...head.value.changes];
  const conflicts = [...head.value.conflicts];
  let page = head.value;
  let pages = 1;
  while (page.more) {
    if (page.cursor === undefined || page.cursor === null) throw new GatewayError('BAD_RESPONSE', 'sync_delta says more=true without a cursor');
    if (pages >= MAX_PAGES) throw new GatewayError('BAD_RESPONSE', `sync_delta still says more after ${MAX_PAGES} pages`);
    const next: SyncRequest = { ...request, cursor: page.cursor };
    page = (await call({ method: 'POST', path: SYNC_REQUEST_PATH, body: next, schema: SyncDeltaSchema })).value;
    changes.push(...page.changes);
    conflicts.push(...page.conflicts);
    pages += 1;
  }
  return {
    changes,
    conflicts,
    serverTime: head.value.server_time,
    pages,
    live: head.value.live,
    sentAtMs: head.sentAtMs,
    receivedAtMs: head.receivedAtMs,
  };
}

/**
 * `app watch`: every change of the home as it arrives. A full pull gives the watermark (and, on request, the current
 * state), then live waits follow one another (docs/protocol.md §Live waits), each from the watermark of the last.
 * A server without live waits is polled (seed §Polling, adaptive). A server that shuts down answers the held wait
 * with reason `shutdown`: that is a reconnect, not an error; failures retry with the seed's backoff (1, 2, 4, 8, 16,
 * 30 s, jittered) or the server's Retry-After, for ever, until the signal aborts.
 */
import { GatewayError, SyncHttpError } from '../errors.js';
import type { WireChange } from '../protocol/index.js';
import { nextPollInterval, retryDelayMs } from '../sync/backoff.js';
import { DEFAULT_LIVE_WAIT_SECONDS, liveEnd, liveWaitSeconds, type LiveSupport } from '../sync/live.js';
import type { AppSession } from './session.js';

/** Polling bounds against a server without live waits: the seed's 5 s minimum, a watcher's shorter maximum. */
const POLL_MIN_MS = 5_000;
const POLL_MAX_MS = 60_000;
/** sync_ack (seed §5) at most this often while changes flow. */
const ACK_EVERY_MS = 60_000;
/** After a `shutdown` answer: the server is restarting; give it this long before the first try. */
const SHUTDOWN_PAUSE_MS = 500;

export interface WatchOptions {
  readonly session: AppSession;
  /** Print the home's current entities (the first full pull) before the changes. */
  readonly initial: boolean;
  readonly onChange: (change: WireChange) => void;
  /** Human notes (reconnecting, polling fallback): the command prints them on stderr. */
  readonly onNote: (text: string) => void;
  readonly signal: AbortSignal;
  readonly waitSeconds?: number;
  readonly random?: () => number;
}

/** Codes after which retrying cannot help: the credentials or the request are wrong. */
const FATAL = new Set(['UNAUTHORIZED', 'FORBIDDEN', 'BAD_REQUEST', 'BAD_SIGNATURE', 'CONFIG_INVALID']);

export async function watchHome(o: WatchOptions): Promise<void> {
  const random = o.random ?? Math.random;
  let watermark: string | undefined;
  let support: LiveSupport | undefined | null = null; // null: not probed yet (again after a reconnect)
  let printInitial = o.initial;
  let failures = 0;
  let pollMs = POLL_MIN_MS;
  let lastAckAt = Date.now();
  while (!o.signal.aborted) {
    try {
      if (support === null) {
        support = await o.session.probeLive();
        if (support === undefined) o.onNote(`the server has no live waits: polling every ${POLL_MIN_MS / 1000}–${POLL_MAX_MS / 1000} s`);
      }
      if (watermark === undefined) {
        const full = await o.session.delta({ last_sync: null, include_deleted: false });
        if (printInitial) full.changes.forEach(o.onChange);
        printInitial = false;
        watermark = full.serverTime;
        await o.session.ack(watermark);
      }
      const wait = support === undefined ? 0 : liveWaitSeconds(support, o.waitSeconds ?? DEFAULT_LIVE_WAIT_SECONDS);
      const delta = await o.session.delta({ last_sync: watermark, include_deleted: true }, wait);
      if (o.signal.aborted) return;
      delta.changes.forEach(o.onChange);
      watermark = delta.serverTime;
      if (delta.changes.length > 0 && Date.now() - lastAckAt >= ACK_EVERY_MS) {
        await o.session.ack(watermark); // lets the server purge tombstones; not needed after every change
        lastAckAt = Date.now();
      }
      failures = 0;
      const end = wait > 0 ? liveEnd(delta.live) : 'unsupported';
      if (end === 'shutdown') {
        o.onNote('the server is shutting down: reconnecting');
        support = null;
        await sleep(SHUTDOWN_PAUSE_MS, o.signal);
      } else if (end === 'unsupported') {
        if (wait > 0) {
          o.onNote('the server ignored the live wait: polling');
          support = undefined;
        }
        pollMs = nextPollInterval(pollMs, delta.changes.length > 0, POLL_MIN_MS, POLL_MAX_MS);
        await sleep(pollMs, o.signal);
      }
    } catch (err) {
      if (o.signal.aborted) return;
      const next = afterFailure(err, failures + 1, random);
      if (next === 'resync') {
        o.onNote('the server no longer knows our watermark: full resync');
        watermark = undefined;
        continue;
      }
      failures += 1;
      o.onNote(next.note);
      support = null;
      await sleep(next.delayMs, o.signal);
    }
  }
}

/** After a failed round: a full resync (INVALID_SYNC_STATE), a retry after a delay, or the error itself (fatal). */
function afterFailure(err: unknown, failures: number, random: () => number): 'resync' | { delayMs: number; note: string } {
  if (err instanceof SyncHttpError && err.code === 'INVALID_SYNC_STATE') return 'resync';
  if (err instanceof GatewayError && FATAL.has(err.code)) throw err;
  const retryAfterMs = err instanceof SyncHttpError && err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : 0;
  const delayMs = Math.max(retryAfterMs, retryDelayMs(failures, random));
  const what = err instanceof GatewayError ? `${err.code}: ${err.message}` : String(err);
  return { delayMs, note: `${what}; reconnecting in ${(delayMs / 1000).toFixed(1)} s` };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

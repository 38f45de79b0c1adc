/**
 * Pure schedule rules of the scheduler (seed §Polling, §Retry Strategy; docs/architecture.md §Scheduler: live first).
 * - Polling: adaptive between 5 s and 5 min — back to the minimum after a cycle that moved changes, doubling toward
 *   the maximum while idle.
 * - Retries: the seed's "1s, 2s, 4s, 8s, 16s, 30s" with "Max retries: 5": retry n waits the n-th delay (1, 2, 4, 8,
 *   16 s), with ±20 % jitter so a fleet of gateways does not retry in step; the sixth consecutive failure enters
 *   offline mode ("Persistent failures: Enter offline mode"), which probes every 30 s — the seed's last step.
 * - Failures: what follows one (afterFailure), and a refused live wait told apart from a failed one.
 */
import { SyncHttpError } from '../errors.js';
import { retryDelayMs as jitteredDelayMs } from '../util/backoff.js';

export const SEED_RETRY_DELAYS_MS: readonly number[] = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000];
export const SEED_MAX_RETRIES = 5;
export const SEED_MIN_INTERVAL_MS = 5_000;
export const SEED_MAX_INTERVAL_MS = 300_000;

/** Delay before retry number `failures` (1-based): the seed's delays, ±20 % jitter by default (util/backoff.ts). */
export function retryDelayMs(failures: number, random: () => number, jitter = 0.2, delays: readonly number[] = SEED_RETRY_DELAYS_MS): number {
  return jitteredDelayMs(failures, random, jitter, delays);
}

/** After this many consecutive failures the scheduler is offline (more than `maxRetries` retries would be needed). */
export function isOffline(failures: number, maxRetries = SEED_MAX_RETRIES): boolean {
  return failures > maxRetries;
}

/** The polling interval after a successful cycle. */
export function nextPollInterval(current: number, moved: boolean, minMs = SEED_MIN_INTERVAL_MS, maxMs = SEED_MAX_INTERVAL_MS): number {
  if (moved) return minMs;
  return Math.min(maxMs, Math.max(minMs, current * 2));
}

/** When a local change asks for a sync: critical ones after the debounce, others within the minimum interval. */
export function localChangeDelay(critical: boolean, debounceMs: number, minIntervalMs: number): number {
  return critical ? debounceMs : minIntervalMs;
}

/** The retry rules a failure is weighed against (the scheduler's config). */
export interface RetryRules {
  readonly maxRetries: number;
  readonly retryDelaysMs: readonly number[];
  readonly jitter: number;
  readonly probeIntervalMs: number;
}

/**
 * What follows a failed cycle, live wait or push: RATE_LIMITED waits the server's Retry-After (or the first retry
 * delay) and counts no failure; any other failure counts, and is retried after the seed's delay — or, past
 * `maxRetries` (or already offline), probed every `probeIntervalMs` in offline mode.
 */
export type FailureStep =
  | { readonly kind: 'rate_limited'; readonly waitMs: number }
  | { readonly kind: 'backoff' | 'offline'; readonly failures: number; readonly waitMs: number };

export function afterFailure(err: unknown, failures: number, offline: boolean, rules: RetryRules, random: () => number): FailureStep {
  if (err instanceof SyncHttpError && err.code === 'RATE_LIMITED') {
    const waitMs = (err.retryAfterSeconds ?? 0) * 1000 || retryDelayMs(1, random, rules.jitter, rules.retryDelaysMs);
    return { kind: 'rate_limited', waitMs };
  }
  const counted = failures + 1;
  if (offline || isOffline(counted, rules.maxRetries)) return { kind: 'offline', failures: counted, waitMs: rules.probeIntervalMs };
  return { kind: 'backoff', failures: counted, waitMs: retryDelayMs(counted, random, rules.jitter, rules.retryDelaysMs) };
}

/**
 * A live wait the server refused rather than failed (TOO_MANY_WAITS, SERVER_BUSY): how long to poll before asking
 * again — its Retry-After, at least 1 s. Undefined for any other error (a failure: afterFailure).
 */
export function liveRefusalWaitMs(err: unknown): number | undefined {
  if (!(err instanceof SyncHttpError) || (err.code !== 'TOO_MANY_WAITS' && err.code !== 'SERVER_BUSY')) return undefined;
  return Math.max(1, err.retryAfterSeconds ?? 1) * 1000;
}

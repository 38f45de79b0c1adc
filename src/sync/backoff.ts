/**
 * Pure schedule rules of the scheduler (seed §Polling, §Retry Strategy; docs/architecture.md §Scheduler: live first).
 * - Polling: adaptive between 5 s and 5 min — back to the minimum after a cycle that moved changes, doubling toward
 *   the maximum while idle.
 * - Retries: the seed's "1s, 2s, 4s, 8s, 16s, 30s" with "Max retries: 5": retry n waits the n-th delay (1, 2, 4, 8,
 *   16 s), with ±20 % jitter so a fleet of gateways does not retry in step; the sixth consecutive failure enters
 *   offline mode ("Persistent failures: Enter offline mode"), which probes every 30 s — the seed's last step.
 */
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

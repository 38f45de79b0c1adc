/**
 * Jittered retry delays, shared by the sync scheduler (seed §Retry Strategy: 1, 2, 4, 8, 16 s ± 20 %) and the
 * external broker connection's reconnects. Pure functions: the caller owns the failure count and the random source.
 */

/** Delay before retry number `failures` (1-based) from `delays` (the last repeats), jittered by ±`jitter` with `random()` in [0, 1). */
export function retryDelayMs(failures: number, random: () => number, jitter: number, delays: readonly number[]): number {
  const index = Math.min(Math.max(failures, 1), delays.length) - 1;
  const base = delays[index] ?? delays[delays.length - 1] ?? 1_000;
  return Math.round(base * (1 + jitter * (2 * random() - 1)));
}

/** Doubling delays from min to max (the last one is max): a reconnect schedule before jitter. */
export function doublingDelays(minMs: number, maxMs: number): number[] {
  if (!(minMs > 0) || !(maxMs >= minMs)) throw new RangeError(`doublingDelays: expected 0 < minMs <= maxMs, given ${minMs}, ${maxMs}`);
  const delays: number[] = [];
  for (let d = minMs; d < maxMs; d *= 2) delays.push(d);
  delays.push(maxMs);
  return delays;
}

/**
 * The sync scheduler's options, checked at construction (adaptive polling, the uplink window, retries and offline
 * probing, live waits; seed §Polling, §Retry Strategy), and what it drives: the runner (SyncClient).
 */
import { z } from 'zod';
import type { Logger } from '../log.js';
import type { SyncState } from '../store/sync-state.js';
import { SEED_RETRY_DELAYS_MS } from './backoff.js';
import { DEFAULT_LIVE_WAIT_SECONDS, type LiveSupport } from './live.js';
import { Ms } from './options.js';
import type { CycleReport, LiveRoundReport, PushOnlyReport } from './reports.js';

export const SchedulerConfigSchema = z
  .object({
    minIntervalMs: Ms.default(5_000),
    maxIntervalMs: Ms.default(300_000),
    /** A critical local change is pushed this long after it arrived (more critical changes ride along). */
    criticalDebounceMs: z.number().int().nonnegative().default(20),
    /** An ordinary local change is pushed within this window (docs/operations.md §Uplink window). */
    uplinkWindowMs: z.number().int().nonnegative().default(1_000),
    maxRetries: z.number().int().nonnegative().default(5),
    retryDelaysMs: z.array(Ms).min(1).default([...SEED_RETRY_DELAYS_MS]),
    jitter: z.number().min(0).max(1).default(0.2),
    probeIntervalMs: Ms.default(30_000),
    stopTimeoutMs: z.number().int().nonnegative().default(5_000),
    /** Hold live waits when the server offers them (false: poll only). */
    live: z.boolean().default(true),
    liveWaitSeconds: z.number().positive().max(3600).default(DEFAULT_LIVE_WAIT_SECONDS),
    /** While polling a server without live waits, ask it again this often. */
    liveRecheckMs: Ms.default(600_000),
    shutdownPauseMs: z.number().int().nonnegative().default(500),
    /** At most one live wait opened, and at most one push started, per this many ms (the server's rate limit). */
    minRequestSpacingMs: z.number().int().nonnegative().default(100),
  })
  .refine((c) => c.minIntervalMs <= c.maxIntervalMs, { message: 'minIntervalMs must be ≤ maxIntervalMs' });
export type SchedulerConfig = z.input<typeof SchedulerConfigSchema>;

/** What the scheduler drives: SyncClient implements it. Without the live and push methods it polls and cycles only. */
export interface SyncRunner {
  runCycle(): Promise<CycleReport>;
  probe(): Promise<void>;
  /** The next cycle is a full resync from last_sync null (SyncClient.requestFullResync). */
  requestFullResync?(): void;
  destroy?(): Promise<void>;
  probeLive?(): Promise<LiveSupport | undefined>;
  liveRound?(options: { readonly waitSeconds: number; readonly signal?: AbortSignal }): Promise<LiveRoundReport>;
  pushPending?(): Promise<PushOnlyReport>;
}

export interface SchedulerOptions extends SchedulerConfig {
  readonly runner: SyncRunner;
  readonly logger: Logger;
  /** Where `mode` is persisted for `status` (sync_state). */
  readonly state?: Pick<SyncState, 'set'>;
  readonly random?: () => number;
  readonly now?: () => number;
}

/**
 * What the scheduler reports about itself (SyncScheduler.status(): `status`, GET /status, /healthz, metrics): the
 * mode, how server changes arrive now — a held live wait, or polling and why (seed §Polling) — and the live loop's
 * and the uplink's counters. The live part is a pure function of what the loop and the uplink say.
 */
import type { SyncMode } from '../store/sync-state.js';
import type { LiveEnd } from './live.js';
import type { LiveCounters } from './live-loop.js';
import type { CycleReport } from './reports.js';

/** Why server changes come by polling instead of a live wait. */
export type PollingReason = 'disabled' | 'unsupported' | 'refused' | 'not_online';

export interface LiveStatus {
  /** Live waits are configured and the runner can hold them. */
  readonly enabled: boolean;
  /** Local epoch ms when the live wait held now was sent; null while none is held. */
  readonly heldSince: number | null;
  /** How long it has been held, ms (null while none is). */
  readonly heldForMs: number | null;
  readonly pollingReason: PollingReason | null;
  readonly rounds: number;
  readonly wakes: number;
  /** Live waits re-opened after one was lost: a `shutdown` answer, or a failure the backoff recovered from. */
  readonly reconnects: number;
  readonly lastEnd: LiveEnd | null;
  /** Pushes of local changes alone (the uplink), and when the next is due. */
  readonly pushes: number;
  readonly pushDueAt: number | null;
}

export interface SchedulerStatus {
  readonly mode: SyncMode;
  /** How server changes reach the gateway now: a held live wait, or polling. */
  readonly via: 'live' | 'polling';
  readonly live: LiveStatus;
  readonly consecutiveFailures: number;
  readonly intervalMs: number;
  readonly nextSyncAt: number | null;
  readonly syncing: boolean;
  readonly lastReport: CycleReport | null;
  readonly lastError: { code: string; message: string; at: number } | null;
  readonly lastSuccessAt: number | null;
}

/** What the live loop shows (LiveLoop); undefined when live waits are off. */
export interface LiveLoopView {
  readonly running: boolean;
  readonly heldSince: number | null;
  readonly lastEnd: LiveEnd | null;
  counters(): LiveCounters;
}

/** What the uplink shows (Uplink); undefined when the runner pushes only within cycles. */
export interface UplinkView {
  readonly pushes: number;
  readonly dueAt: number | null;
}

export interface LiveStatusInput {
  readonly mode: SyncMode;
  readonly live: LiveLoopView | undefined;
  readonly uplink: UplinkView | undefined;
  /** Why polling, while online without a live wait. */
  readonly pollingReason: PollingReason;
  /** Live waits re-opened after a failure (the loop counts its `shutdown` reconnects itself). */
  readonly reconnects: number;
  readonly now: number;
}

/** How server changes arrive now, and the live part of the status: live only while online with the loop running. */
export function liveStatus(input: LiveStatusInput): Pick<SchedulerStatus, 'via' | 'live'> {
  const { mode, live, uplink } = input;
  const heldSince = live?.heldSince ?? null;
  const viaLive = live?.running === true && mode === 'online';
  const counters = live?.counters() ?? { rounds: 0, wakes: 0, shutdowns: 0 };
  return {
    via: viaLive ? 'live' : 'polling',
    live: {
      enabled: live !== undefined,
      heldSince,
      heldForMs: heldSince === null ? null : Math.max(0, input.now - heldSince),
      pollingReason: viaLive ? null : mode === 'online' ? input.pollingReason : 'not_online',
      rounds: counters.rounds,
      wakes: counters.wakes,
      reconnects: input.reconnects + counters.shutdowns,
      lastEnd: live?.lastEnd ?? null,
      pushes: uplink?.pushes ?? 0,
      pushDueAt: uplink?.dueAt ?? null,
    },
  };
}

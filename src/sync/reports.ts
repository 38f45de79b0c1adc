/**
 * What the sync client's work reports (a full cycle, a live wait, a push alone), and the pure rule of when a piece of
 * work ends with a sync_ack.
 */
import type { LiveEnd } from './live.js';
import type { PushReport } from './push.js';

export interface CycleReport {
  readonly pulled: number;
  readonly pushed: number;
  readonly applied: number;
  readonly conflicts: number;
  readonly rejected: number;
  readonly pages: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly durationMs: number;
  readonly serverTime: string;
  readonly fullResync: boolean;
  readonly commands: number;
  /** Whether this cycle sent a sync_ack (ackDue()). */
  readonly acked: boolean;
}

/** One live wait (SyncClient.liveRound): how it ended and what it brought. */
export interface LiveRoundReport {
  readonly end: LiveEnd;
  /** How long the server held it (its `live.waited_ms`; 0 without `live`). */
  readonly waitedMs: number;
  readonly pulled: number;
  readonly pushed: 0;
  readonly applied: number;
  readonly conflicts: number;
  readonly commands: number;
  readonly serverTime: string;
  readonly fullResync: boolean;
  readonly acked: boolean;
  readonly durationMs: number;
  /** Local changes waiting in the outbox after the answer was applied. */
  readonly pending: number;
}

/** A push of the outbox alone (SyncClient.pushPending). */
export interface PushOnlyReport extends PushReport {
  readonly pulled: 0;
  readonly durationMs: number;
}

export function elapsedMs(startedPerfMs: number): number {
  return Math.round((performance.now() - startedPerfMs) * 1000) / 1000;
}

export interface AckDueInput {
  /** Changes the cycle pulled and pushed, and whether its pull was a full resync. */
  readonly moved: number;
  readonly fullResync: boolean;
  /** Local epoch ms of the last ack this process sent; undefined before the first. */
  readonly lastAckAtMs: number | undefined;
  readonly nowMs: number;
  readonly maxAgeMs: number;
}

/**
 * Pure rule: whether a cycle ends with a sync_ack (seed §Sync Flow step 5). The server uses acks only to know how far
 * every client of a home has synced before it purges tombstones (docs/protocol.md §Tombstones), so an idle cycle
 * (nothing pulled, nothing pushed) skips it: an ack is sent by every cycle that moved something, after a full resync,
 * on the first cycle of the process, and at least every `maxAgeMs` (also when the local clock stepped back). A live
 * wait asks with `moved` 0: it acks by age, after a full resync or as the process's first only — one answer per change
 * burst would otherwise cost an ack each.
 */
export function ackDue(input: AckDueInput): boolean {
  if (input.moved > 0 || input.fullResync || input.lastAckAtMs === undefined) return true;
  const age = input.nowMs - input.lastAckAtMs;
  return age < 0 || age >= input.maxAgeMs;
}

/**
 * What the status page shows, as plain JSON (camelCase, like GET /status): the sync mode in the words a user reads —
 * live (a live wait is held: server changes arrive at once), polling, offline — with the last sync and pending
 * changes, health reasons, broker clients; the devices with their rooms; the recent conflicts. Pure functions over
 * what the daemon already reports.
 */
import { z } from 'zod';
import type { DeviceWithRoom } from '../store/device-queries.js';
import type { ConflictEntry } from '../store/index.js';
import type { OpsStatus } from './control.js';

export type SyncLabel = 'live' | 'polling' | 'offline';

export interface PageStatus {
  readonly version: string;
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly health: { readonly healthy: boolean; readonly reasons: readonly string[] };
  readonly sync: {
    readonly label: SyncLabel;
    /** The scheduler's own mode (online, backoff, offline, stopped), or `unconfigured` without credentials. */
    readonly mode: string;
    /** How long the live wait held now has been held, ms (null when none is). */
    readonly heldForMs: number | null;
    readonly lastSyncAt: number | null;
    readonly lastSyncOk: boolean | null;
    readonly lastError: { readonly code: string; readonly message: string; readonly at: number } | null;
    readonly nextSyncAt: number | null;
    readonly pending: number;
    readonly oldestPendingAgeMs: number | null;
  };
  readonly mqtt: { readonly clients: number; readonly address: string | null };
  readonly devices: number;
  readonly conflicts: number;
}

export interface PageSnapshot {
  readonly status: PageStatus;
  readonly devices: readonly DeviceWithRoom[];
  readonly conflicts: readonly ConflictEntry[];
}

/**
 * Fields a scheduler that holds live waits reports besides its mode (`via`, `live.heldForMs`); read when present,
 * so the page says "polling" for a scheduler that does not report them.
 */
const LiveFields = z.looseObject({
  mode: z.string(),
  via: z.enum(['live', 'polling']).optional(),
  live: z.looseObject({ heldForMs: z.number().nullable().optional() }).optional(),
});

/** live / polling / offline from what the scheduler reports (null: sync not configured). */
export function syncLabel(scheduler: unknown): { label: SyncLabel; mode: string; heldForMs: number | null } {
  const parsed = LiveFields.safeParse(scheduler);
  if (!parsed.success) return { label: 'offline', mode: 'unconfigured', heldForMs: null };
  const { mode, via, live } = parsed.data;
  if (mode !== 'online') return { label: 'offline', mode, heldForMs: null };
  const heldForMs = live?.heldForMs ?? null;
  return { label: via === 'live' ? 'live' : 'polling', mode, heldForMs: via === 'live' ? heldForMs : null };
}

export function pageStatus(s: OpsStatus, version: string): PageStatus {
  const sync = syncLabel(s.scheduler);
  const lastError = s.scheduler?.lastError ?? s.lastError;
  return {
    version,
    pid: s.pid,
    uptimeSeconds: s.uptimeSeconds,
    health: { healthy: s.health.healthy, reasons: [...s.health.reasons] },
    sync: {
      ...sync,
      lastSyncAt: s.scheduler?.lastSuccessAt ?? s.lastSyncAt,
      lastSyncOk: s.lastResult === null ? null : s.lastResult.ok,
      lastError: lastError === null ? null : { code: lastError.code, message: lastError.message, at: lastError.at },
      nextSyncAt: s.scheduler?.nextSyncAt ?? null,
      pending: s.pending,
      oldestPendingAgeMs: s.oldestPendingAgeMs,
    },
    mqtt: { clients: s.brokerClients, address: s.mqtt ? `${s.mqtt.host}:${s.mqtt.port}` : null },
    devices: s.devices,
    conflicts: s.conflicts,
  };
}

/** What must change for the page to be told (not the clocks that tick by themselves). */
export function statusFingerprint(s: PageStatus): string {
  const { uptimeSeconds: _u, sync, ...rest } = s;
  const { heldForMs: _h, oldestPendingAgeMs: _o, ...syncRest } = sync;
  return JSON.stringify({ ...rest, sync: { ...syncRest, holding: sync.heldForMs !== null, waiting: sync.oldestPendingAgeMs !== null } });
}

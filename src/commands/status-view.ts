/**
 * The daemon's answers as the CLI reads them (validated: they cross a process boundary) — GET /status,
 * GET /api/devices, GET /api/conflicts — and the text form of the status.
 */
import { z } from 'zod';
import { pollingWhy } from '../daemon/health.js';

const LastError = z.object({ code: z.string(), message: z.string(), at: z.number() }).nullable();

export const DaemonStatusView = z.looseObject({
  source: z.literal('daemon'),
  version: z.string().optional(),
  pid: z.number(),
  uptimeSeconds: z.number(),
  devices: z.number(),
  pending: z.number(),
  oldestPendingAgeMs: z.number().nullable(),
  lastSyncAt: z.number().nullable(),
  lastResult: z.looseObject({ ok: z.boolean() }).nullable(),
  lastError: LastError,
  lastSync: z.string().nullable(),
  mode: z.string().nullable(),
  conflicts: z.number(),
  syncConfigured: z.boolean(),
  brokerClients: z.number(),
  mqtt: z.object({ host: z.string(), port: z.number() }).nullable(),
  scheduler: z
    .looseObject({
      mode: z.string(),
      consecutiveFailures: z.number(),
      nextSyncAt: z.number().nullable(),
      lastError: LastError,
      intervalMs: z.number().optional(),
      via: z.enum(['live', 'polling']).optional(),
      live: z
        .looseObject({ heldForMs: z.number().nullable(), pollingReason: z.string().nullable(), wakes: z.number(), reconnects: z.number(), pushes: z.number() })
        .optional(),
    })
    .nullable(),
  health: z.looseObject({ healthy: z.boolean(), reasons: z.array(z.string()) }),
  jobs: z.array(z.looseObject({ name: z.string(), schedule: z.string(), running: z.boolean(), nextRunAt: z.string().nullable(), lastRun: z.looseObject({ ok: z.boolean(), at: z.number() }).nullable() })),
  http: z.string().nullable(),
  convergence: z
    .looseObject({
      checks: z.number(),
      mismatches: z.number(),
      repairs: z.number(),
      repairedEntities: z.number(),
      lastCheckAt: z.number().nullable(),
      lastResult: z.string().nullable(),
      lastMismatch: z.looseObject({ at: z.number(), buckets: z.array(z.number()), repaired: z.number() }).nullable(),
    })
    .nullable()
    .optional(),
  /** The server's profile and what is wrong with it (docs/protocol.md §Compatibility); absent from older daemons. */
  server: z.looseObject({ profile: z.string(), decided_by: z.string(), problems: z.record(z.string(), z.string()) }).nullable().optional(),
});
export type DaemonStatusView = z.infer<typeof DaemonStatusView>;

/** ", live wait held for 12 s (3 wakes, 0 reconnects)" or ", polling every 10 s (the server holds no live waits)". */
function liveLine(scheduler: DaemonStatusView['scheduler']): string {
  const live = scheduler?.live;
  if (!scheduler || !live || scheduler.via === undefined) return '';
  if (scheduler.via === 'live') {
    const held = live.heldForMs === null ? 're-opening' : `held for ${Math.round(live.heldForMs / 1000)} s`;
    return `, live wait ${held} (${live.wakes} wakes, ${live.reconnects} reconnects, ${live.pushes} pushes)`;
  }
  const every = scheduler.intervalMs === undefined ? '' : ` every ${Math.round(scheduler.intervalMs / 1000)} s`;
  return `, polling${every}${live.pollingReason === null ? '' : ` (${pollingWhy(live.pollingReason)})`}`;
}

/** "digest match (checked …), 1 mismatch repaired (buckets 3, 9: 2 entities, …)". */
function convergenceLine(c: DaemonStatusView['convergence']): string {
  if (c === null || c === undefined || c.lastCheckAt === null) return 'not checked yet (the server sends no digest, or no sync yet)';
  const last = `digest ${c.lastResult ?? '-'} (checked ${iso(c.lastCheckAt)}, ${c.checks} checks)`;
  const m = c.lastMismatch;
  if (m === null) return `${last}, no mismatch`;
  return `${last}, ${c.mismatches} mismatch(es) repaired; last ${iso(m.at)}: buckets ${m.buckets.join(', ')}, ${m.repaired} entities repaired`;
}

/** GET /api/devices: the devices with their room names. */
export const DeviceListView = z.array(
  z.object({
    id: z.string(),
    name: z.string().nullable(),
    type: z.string().nullable(),
    roomId: z.string().nullable(),
    room: z.string().nullable(),
    state: z.record(z.string(), z.unknown()),
    updatedAt: z.string().nullable(),
    synced: z.boolean(),
    pending: z.boolean(),
  }),
);
export type DeviceListView = z.infer<typeof DeviceListView>;

/** GET /api/conflicts: the latest conflict-log entries, newest first. */
export const ConflictListView = z.array(
  z.object({
    id: z.number(),
    recordedAt: z.number(),
    entityType: z.string(),
    entityId: z.string(),
    type: z.string(),
    reason: z.string(),
    resolution: z.string(),
    serverVersion: z.unknown(),
    clientVersion: z.unknown(),
  }),
);
export type ConflictListView = z.infer<typeof ConflictListView>;

const iso = (ms: number | null | undefined): string => (ms === null || ms === undefined ? 'never' : new Date(ms).toISOString());

/** "server: funkygibbon-v1 (decided from its answers)" and one line per thing wrong with it, in words. */
export function serverLines(server: { profile: string; decided_by: string; problems: Record<string, string> } | null): string[] {
  if (server === null) return [];
  const how = server.decided_by === 'config' ? 'set in the config' : 'decided from its answers';
  return [`server:          ${server.profile} (${how})`, ...Object.values(server.problems).map((p) => `  ! ${p}`)];
}

export function formatDaemonStatus(s: DaemonStatusView): string {
  const age = s.oldestPendingAgeMs === null ? '-' : `${Math.round(s.oldestPendingAgeMs / 1000)} s`;
  const mode = s.scheduler?.mode ?? (s.syncConfigured ? s.mode ?? 'unknown' : 'offline (no server credentials)');
  const online = mode === 'online' ? `online${liveLine(s.scheduler)}` : `${mode}${s.scheduler && s.scheduler.consecutiveFailures > 0 ? ` (${s.scheduler.consecutiveFailures} failures)` : ''}`;
  const err = s.scheduler?.lastError ?? s.lastError;
  const lines = [
    `health:          ${s.health.healthy ? 'ok' : `UNHEALTHY: ${s.health.reasons.join('; ')}`}`,
    `sync:            ${online}`,
    `mqtt:            ${s.mqtt ? `${s.mqtt.host}:${s.mqtt.port}` : '-'}, ${s.brokerClients} client(s)`,
    `devices:         ${s.devices}`,
    `pending changes: ${s.pending} (oldest ${age})`,
    `last sync:       ${iso(s.lastSyncAt)} (${s.lastResult ? (s.lastResult.ok ? 'ok' : 'failed') : '-'})`,
    `next sync:       ${s.scheduler?.nextSyncAt ? iso(s.scheduler.nextSyncAt) : '-'}`,
    `conflicts:       ${s.conflicts}`,
    `convergence:     ${convergenceLine(s.convergence)}`,
    `last error:      ${err ? `${err.code}: ${err.message} (${iso(err.at)})` : '-'}`,
    ...serverLines(s.server ?? null),
    `daemon:          ${s.version ? `version ${s.version}, ` : ''}pid ${s.pid}, up ${s.uptimeSeconds} s, ${s.http ?? ''}`,
    ...s.jobs.map((j) => `job ${j.name.padEnd(14)} ${j.schedule.padEnd(14)} next ${j.nextRunAt ?? '-'}, last ${j.lastRun ? `${iso(j.lastRun.at)} ${j.lastRun.ok ? 'ok' : 'failed'}` : 'never'}${j.running ? ' (running)' : ''}`),
  ];
  return lines.join('\n');
}

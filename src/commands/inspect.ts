/** How the store's own view reads in a terminal: `status` and `devices` when they read the store, not the daemon. */
import type { ServerProfileState, SyncStatus } from '../store/index.js';
import { serverLines } from './status-view.js';

/** `server`: the server's profile and its problems, kept apart from SyncStatus (whose --json keys are pinned). */
export function formatStoreStatus(status: SyncStatus, server: ServerProfileState | null = null): string {
  const age = status.oldestPendingAgeMs === null ? '-' : `${Math.round(status.oldestPendingAgeMs / 1000)} s`;
  return [
    `mode:            ${status.mode ?? 'unknown'}`,
    `pending changes: ${status.pending} (oldest ${age})`,
    `last sync:       ${status.lastSyncAt ? new Date(status.lastSyncAt).toISOString() : 'never'} (${status.lastResult ? (status.lastResult.ok ? 'ok' : 'failed') : '-'})`,
    `watermark:       ${status.lastSync ?? '-'}`,
    `conflicts:       ${status.conflicts}`,
    `last error:      ${status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : '-'}`,
    ...serverLines(server),
  ].join('\n');
}

/** How the store's own view reads in a terminal: `status` and `devices` when they read the store, not the daemon. */
import type { SyncStatus } from '../store/index.js';

export function formatStoreStatus(status: SyncStatus): string {
  const age = status.oldestPendingAgeMs === null ? '-' : `${Math.round(status.oldestPendingAgeMs / 1000)} s`;
  return [
    `mode:            ${status.mode ?? 'unknown'}`,
    `pending changes: ${status.pending} (oldest ${age})`,
    `last sync:       ${status.lastSyncAt ? new Date(status.lastSyncAt).toISOString() : 'never'} (${status.lastResult ? (status.lastResult.ok ? 'ok' : 'failed') : '-'})`,
    `watermark:       ${status.lastSync ?? '-'}`,
    `conflicts:       ${status.conflicts}`,
    `last error:      ${status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : '-'}`,
  ].join('\n');
}

/** `status` and `devices` (issue 3 §Interfaces): read the store directly, so they work while the daemon runs. */
import { listDevices, openStoreReadOnly } from '../store/device-queries.js';
import { readSyncStatus } from '../store/sync-state.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const STATUS_HELP = `usage: inbetweenies-gateway status --data-dir DIR [--json]

Prints pending changes and the age of the oldest, the last sync time and result, online/offline and the last error.`;

const DEVICES_HELP = `usage: inbetweenies-gateway devices --data-dir DIR [--json]

Prints the devices in the store with their current state.`;

const OPTIONS = { 'data-dir': { type: 'string' }, json: { type: 'boolean' } } as const;

function dataDirOf(value: string | undefined): string {
  if (!value) throw new UsageError('--data-dir DIR is required');
  return value;
}

export async function statusCommand(argv: string[]): Promise<number> {
  return withUsage(STATUS_HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, OPTIONS);
    const db = openStoreReadOnly(dataDirOf(values['data-dir']));
    try {
      const status = readSyncStatus(db);
      if (values.json) {
        process.stdout.write(`${JSON.stringify(status)}\n`);
        return 0;
      }
      const age = status.oldestPendingAgeMs === null ? '-' : `${Math.round(status.oldestPendingAgeMs / 1000)} s`;
      const lines = [
        `mode:            ${status.mode ?? 'unknown'}`,
        `pending changes: ${status.pending} (oldest ${age})`,
        `last sync:       ${status.lastSyncAt ? new Date(status.lastSyncAt).toISOString() : 'never'} (${status.lastResult ? (status.lastResult.ok ? 'ok' : 'failed') : '-'})`,
        `watermark:       ${status.lastSync ?? '-'}`,
        `conflicts:       ${status.conflicts}`,
        `last error:      ${status.lastError ? `${status.lastError.code}: ${status.lastError.message}` : '-'}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return 0;
    } finally {
      db.close();
    }
  });
}

export async function devicesCommand(argv: string[]): Promise<number> {
  return withUsage(DEVICES_HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, OPTIONS);
    const db = openStoreReadOnly(dataDirOf(values['data-dir']));
    try {
      const devices = listDevices(db);
      if (values.json) {
        process.stdout.write(`${JSON.stringify(devices)}\n`);
        return 0;
      }
      const rows = devices.map((d) => [d.id, d.name ?? '', d.type ?? '', d.pending ? 'pending' : d.synced ? 'synced' : 'local', JSON.stringify(d.state)]);
      const header = ['ID', 'NAME', 'TYPE', 'SYNC', 'STATE'];
      const widths = header.map((h, i) => Math.min(40, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
      const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
      process.stdout.write(`${[fmt(header), ...rows.map(fmt)].join('\n')}\n`);
      return 0;
    } finally {
      db.close();
    }
  });
}

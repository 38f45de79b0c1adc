/** `status` and `devices` (issue 3 §Interfaces): read the store directly, so they work while the daemon runs. */
import { listDevices, openStoreReadOnly, roomNames } from '../store/device-queries.js';
import { readSyncStatus } from '../store/sync-state.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';
import { formatDevicesTable } from './devices-view.js';
import { serverLines } from './status-view.js';

const STATUS_HELP = `usage: inbetweenies-gateway status --data-dir DIR [--json]

Prints pending changes and the age of the oldest, the last sync time and result, online/offline and the last error.`;

const DEVICES_HELP = `usage: inbetweenies-gateway devices --data-dir DIR [--json]

Prints the devices in the store: id, name, type, room, whether their last change is synced, and their state as
attribute=value pairs cut to the terminal's width ("… (+N)": N more attributes).
  --json   every device with its whole state, one JSON array`;

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
        ...serverLines(db.syncState.get('server_profile') ?? null),
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
      const rooms = roomNames(db);
      if (values.json) {
        const withRooms = devices.map((d) => ({ ...d, room: d.roomId === null ? null : (rooms.get(d.roomId) ?? null) }));
        process.stdout.write(`${JSON.stringify(withRooms)}\n`);
        return 0;
      }
      const columns = process.stdout.isTTY ? process.stdout.columns : 160;
      process.stdout.write(`${formatDevicesTable(devices, { rooms, columns })}\n`);
      return 0;
    } finally {
      db.close();
    }
  });
}

/**
 * `devices`: the devices with their state, from the running daemon (GET /api/devices) or the store (source.ts:
 * found as `status` and `sync` find the daemon; `--data-dir DIR` alone reads that store). The first line says which.
 */
import { roomNames, withRoomNames, type DeviceWithRoom } from '../store/device-queries.js';
import { parseCommandArgs, withUsage } from './args.js';
import { askDaemon } from './daemon-client.js';
import { formatDevicesTable } from './devices-view.js';
import { describeSource, findSource, SOURCE_HELP, SOURCE_OPTIONS, type Source } from './source.js';
import { DeviceListView } from './status-view.js';

const HELP = `usage: inbetweenies-gateway devices [--config FILE] [--http-port N] [--data-dir DIR] [--json]

Prints the devices: id, name, type, room, whether their last change is synced, and their state as attribute=value
pairs cut to the terminal's width ("… (+N)": N more attributes). The first line says what was read: "daemon at URL
(pid N)" or "store PATH (daemon not running)" (with --json, on stderr).
${SOURCE_HELP}
  --json           every device with its whole state and its room's name, one JSON array
Exit status: 0 ok, 1 neither a daemon nor a store (or the daemon failed to answer), 2 bad usage or configuration.`;

export async function devicesCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { ...SOURCE_OPTIONS, json: { type: 'boolean' } });
    const source = await findSource(values);
    if (typeof source === 'number') return source;
    const devices = await read(source);
    if (devices === undefined) return 1;
    const head = describeSource(source);
    if (values.json) {
      process.stderr.write(`${head}\n`);
      process.stdout.write(`${JSON.stringify(devices)}\n`);
      return 0;
    }
    const rooms = new Map(devices.flatMap((d) => (d.roomId !== null && d.room !== null ? [[d.roomId, d.room] as const] : [])));
    const columns = process.stdout.isTTY ? process.stdout.columns : 160;
    process.stdout.write(`${head}\n${formatDevicesTable(devices, { rooms, columns })}\n`);
    return 0;
  });
}

async function read(source: Source): Promise<DeviceWithRoom[] | undefined> {
  if (source.kind === 'store') {
    try {
      return withRoomNames(source.reader.entities.devices(), roomNames(source.reader));
    } finally {
      source.reader.close();
    }
  }
  const answer = await askDaemon(source.url, '/api/devices', { token: source.token, timeoutMs: 10_000 });
  const parsed = DeviceListView.safeParse(answer.body);
  if (answer.status !== 200 || !parsed.success) {
    process.stderr.write(`unexpected GET /api/devices answer from ${source.url} (${answer.status}): ${parsed.error?.issues[0]?.message ?? JSON.stringify(answer.body).slice(0, 200)}\n`);
    return undefined;
  }
  return parsed.data;
}

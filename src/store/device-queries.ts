/** The CLI's way into a store while the daemon runs (`status`, `devices`): read-only, never creates or migrates. */
import { existsSync } from 'node:fs';
import { GatewayError } from '../errors.js';
import { storePath } from './db.js';
import type { DeviceView } from './device-view.js';
import { openStoreReader, type StoreReader } from './index.js';

export { storePath, STORE_FILE } from './db.js';
export type { DeviceView } from './device-view.js';

/** Opens the store in `dataDir` read-only; a clear error when there is none. */
export function openStoreReadOnly(dataDir: string): StoreReader {
  const path = storePath(dataDir);
  if (!existsSync(path)) throw new GatewayError('STORE', `no gateway store at ${path} (has the daemon run with --data-dir ${dataDir}?)`);
  return openStoreReader(path);
}

/** Devices with their current state. */
export function listDevices(reader: Pick<StoreReader, 'entities'>): DeviceView[] {
  return reader.entities.devices();
}

/** Room names by room id (`room-kitchen` → `Kitchen`), for the CLI's device table and the status page. */
export function roomNames(reader: Pick<StoreReader, 'entities'>): Map<string, string> {
  const names = new Map<string, string>();
  for (const entity of reader.entities.ofType('room')) {
    const name = entity.data.name;
    if (typeof name === 'string') names.set(entity.entityId, name);
  }
  return names;
}

/** A device with its room's name (null: no room, or a room the store does not know). */
export type DeviceWithRoom = DeviceView & { readonly room: string | null };

/** The devices with their room names: `devices --json`, GET /api/devices, the status page. */
export function withRoomNames(devices: readonly DeviceView[], rooms: ReadonlyMap<string, string>): DeviceWithRoom[] {
  return devices.map((d) => ({ ...d, room: d.roomId === null ? null : (rooms.get(d.roomId) ?? null) }));
}

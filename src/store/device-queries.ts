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

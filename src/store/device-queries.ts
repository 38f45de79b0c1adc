/** Read-only queries for the CLI (`devices`) and the daemon's status line; safe while the daemon writes (WAL). */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { GatewayError } from '../errors.js';
import { formatTimestamp } from '../protocol/timestamps.js';
import type { Db } from './db.js';

export const STORE_FILE = 'gateway.db';

export function storePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}

/** Opens an existing store read-only (the CLI must not create or migrate a store). */
export function openStoreReadOnly(dataDir: string): Db {
  const path = storePath(dataDir);
  if (!existsSync(path)) throw new GatewayError('STORE', `no gateway store at ${path} (has the daemon run with --data-dir ${dataDir}?)`);
  return new Database(path, { readonly: true, fileMustExist: true });
}

const RowSchema = z.object({
  entity_type: z.string(),
  entity_id: z.string(),
  data: z.string(),
  updated_at: z.number(),
  sync_id: z.string().nullable(),
});
const JsonObject = z.record(z.string(), z.unknown());

export interface DeviceView {
  readonly id: string;
  readonly name: string | null;
  readonly type: string | null;
  readonly roomId: string | null;
  readonly state: Record<string, unknown>;
  readonly updatedAt: string | null;
  readonly synced: boolean;
  readonly pending: boolean;
}

function parseObject(text: string): Record<string, unknown> {
  const parsed = JsonObject.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : {};
}

/** Devices with their current state, joined from device and entity_state rows. */
export function listDevices(db: Db): DeviceView[] {
  const rows = z
    .array(RowSchema)
    .parse(
      db
        .prepare(
          `SELECT entity_type, entity_id, data, updated_at, sync_id FROM entities
           WHERE deleted = 0 AND entity_type IN ('device', 'entity_state') ORDER BY entity_id`,
        )
        .all(),
    );
  const pending = new Set(
    z
      .array(z.object({ k: z.string() }))
      .parse(db.prepare(`SELECT entity_type || '/' || entity_id AS k FROM outbox`).all())
      .map((r) => r.k),
  );
  const byId = new Map<string, { device?: z.infer<typeof RowSchema>; state?: z.infer<typeof RowSchema> }>();
  for (const row of rows) {
    const entry = byId.get(row.entity_id) ?? {};
    if (row.entity_type === 'device') entry.device = row;
    else entry.state = row;
    byId.set(row.entity_id, entry);
  }
  return [...byId.entries()].map(([id, { device, state }]) => {
    const meta = device ? parseObject(device.data) : {};
    const stateData = state ? parseObject(state.data) : {};
    const attrs = JsonObject.safeParse(stateData.state);
    const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
    return {
      id,
      name: str(meta.name),
      type: str(meta.device_type),
      roomId: str(meta.room_id),
      state: attrs.success ? attrs.data : {},
      updatedAt: state ? formatTimestamp(state.updated_at) : null,
      synced: Boolean(state?.sync_id ?? device?.sync_id),
      pending: pending.has(`entity_state/${id}`) || pending.has(`device/${id}`),
    };
  });
}

/** Room names by room id (`room-kitchen` → `Kitchen`), for the CLI's device table. */
export function roomNames(db: Db): Map<string, string> {
  const rows = z
    .array(z.object({ entity_id: z.string(), data: z.string() }))
    .parse(db.prepare(`SELECT entity_id, data FROM entities WHERE deleted = 0 AND entity_type = 'room'`).all());
  const names = new Map<string, string>();
  for (const row of rows) {
    const name = parseObject(row.data).name;
    if (typeof name === 'string') names.set(row.entity_id, name);
  }
  return names;
}

/** The device list (the `devices` command, the daemon's status): device and entity_state rows joined by device id. */
import { formatTimestamp } from '../protocol/timestamps.js';
import { entityKey, isRecord } from './tx.js';
import type { StoredEntity } from './types.js';

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

/** Joins device and entity_state entities by device id; `pending` holds the `type/id` keys with a pending change. */
export function listDeviceViews(entities: readonly StoredEntity[], pending: ReadonlySet<string>): DeviceView[] {
  const byId = new Map<string, { device?: StoredEntity; state?: StoredEntity }>();
  for (const e of entities) {
    const entry = byId.get(e.entityId) ?? {};
    if (e.entityType === 'device') entry.device = e;
    else if (e.entityType === 'entity_state') entry.state = e;
    byId.set(e.entityId, entry);
  }
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  return [...byId.entries()].map(([id, { device, state }]) => {
    const meta = device?.data ?? {};
    const attrs = state?.data.state;
    return {
      id,
      name: str(meta.name),
      type: str(meta.device_type),
      roomId: str(meta.room_id),
      state: isRecord(attrs) ? attrs : {},
      updatedAt: state ? formatTimestamp(state.updatedAt) : null,
      synced: Boolean(state?.syncId ?? device?.syncId),
      pending: pending.has(entityKey('entity_state', id)) || pending.has(entityKey('device', id)),
    };
  });
}

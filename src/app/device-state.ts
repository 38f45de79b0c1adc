/**
 * A device's state as an app reads and writes it on the server: the entity_state whose id is the device id (the
 * gateway's convention, README §Devices), or else the newest one whose `data.device_id` names the device. Writing
 * merges attributes into the current state (read, merge, push): a partial state never wipes the others.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../errors.js';
import {
  EntityStateDataSchema,
  formatTimestamp,
  splitEnvelopeFields,
  type WireApplied,
  type WireChange,
  type WireConflict,
  type WirePushChange,
} from '../protocol/index.js';
import type { AppSession } from './session.js';

export interface DeviceState {
  readonly entityId: string;
  /** `data` without the envelope fields (`id`, `sync_id`, `updated_at`). */
  readonly data: Record<string, unknown>;
  readonly state: Record<string, unknown>;
  readonly updatedAt: string;
  readonly syncId: string;
}

/** Pure: the device's entity_state among the changes of a full pull (tombstones are not in a full pull). */
export function findDeviceState(changes: readonly WireChange[], deviceId: string): DeviceState | undefined {
  let byDeviceId: DeviceState | undefined;
  for (const change of changes) {
    if (change.entity_type !== 'entity_state' || change.operation === 'delete') continue;
    const parsed = EntityStateDataSchema.safeParse(change.data);
    const split = splitEnvelopeFields(change.data);
    if (!parsed.success || !split.ok) continue; // not a state this profile can read: never merged into
    const found = { entityId: change.entity_id, data: split.value.body, state: parsed.data.state, updatedAt: change.updated_at, syncId: change.sync_id };
    if (change.entity_id === deviceId) return found;
    if (parsed.data.device_id === deviceId && (byDeviceId === undefined || found.updatedAt > byDeviceId.updatedAt)) byDeviceId = found;
  }
  return byDeviceId;
}

/** Pure: the push of `attributes` merged into the current state (or a new state), stamped `nowMicros`. */
export function mergedStateChange(
  deviceId: string,
  current: DeviceState | undefined,
  attributes: Readonly<Record<string, unknown>>,
  nowMicros: number,
  versionId: string,
): { change: WirePushChange; state: Record<string, unknown> } {
  const state = { ...(current?.state ?? {}), ...attributes };
  const change: WirePushChange = {
    entity_type: 'entity_state',
    entity_id: current?.entityId ?? deviceId,
    operation: current === undefined ? 'create' : 'update',
    data: { ...(current?.data ?? {}), device_id: current?.data.device_id ?? deviceId, state },
    updated_at: formatTimestamp(nowMicros),
    sync_id: versionId,
    client_sync_id: versionId,
  };
  return { change, state };
}

/**
 * Pure: a version id that sorts by its time first. The seed breaks a tie inside its 1 s window by the higher
 * `sync_id` (§Last-Write-Wins Rules), so a second `app set` a few milliseconds after the first must carry the higher
 * id, or it would lose to the version it was built on. Fixed-width base-36 micros, then randomness against collisions.
 */
export function orderedVersionId(nowMicros: number, random: string): string {
  return `app-${Math.max(0, Math.floor(nowMicros)).toString(36).padStart(12, '0')}-${random}`;
}

/** Reads the device's state with a full pull of the home's entity_states (every page); acknowledges the pull. */
export async function readDeviceState(session: AppSession, deviceId: string): Promise<DeviceState | undefined> {
  const delta = await session.delta({ last_sync: null, entity_types: ['entity_state'], include_deleted: false });
  await session.ack(delta.serverTime);
  return findDeviceState(delta.changes, deviceId);
}

export interface SetOutcome {
  readonly entry: WireApplied;
  /** The state the app pushed (current merged with the attributes). */
  readonly state: Record<string, unknown>;
  /** The conflict the server reported, if any (`server_wins`: the push lost to a newer version). */
  readonly conflict: WireConflict | undefined;
}

/** Read, merge, push: sets `attributes` of the device's state, keeping every other attribute. */
export async function setDeviceState(session: AppSession, deviceId: string, attributes: Readonly<Record<string, unknown>>): Promise<SetOutcome> {
  const current = await readDeviceState(session, deviceId);
  const nowMicros = session.clock.nowMicros();
  const versionId = orderedVersionId(nowMicros, randomBytes(9).toString('base64url'));
  const { change, state } = mergedStateChange(deviceId, current, attributes, nowMicros, versionId);
  const result = await session.push([change]);
  const entry = result.applied.find((a) => a.client_sync_id === versionId);
  if (entry === undefined) throw new GatewayError('BAD_RESPONSE', `sync_result has no entry for client_sync_id ${versionId}`);
  const conflict = result.conflicts.find((c) => c.client_sync_id === versionId);
  return { entry, state, conflict };
}

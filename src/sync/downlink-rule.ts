/**
 * Downlink: the attributes of an incoming entity_state that differ from the local one, as a command for
 * the device. Only entities the gateway already holds (live) produce commands: an unknown device is not ours to drive.
 * Pure; runs in the store's writer (delta pages, push results), so it loads no zod.
 */
import { isDeepStrictEqual } from 'node:util';
import type { DeviceCommand, StoredEntity } from '../store/types.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function downlinkFor(local: StoredEntity | undefined, incomingData: Record<string, unknown>): DeviceCommand | undefined {
  if (local === undefined || local.deleted || local.entityType !== 'entity_state') return undefined;
  const incoming = incomingData.state;
  if (!isRecord(incoming)) return undefined;
  const current = isRecord(local.data.state) ? local.data.state : {};
  const attributes: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (!isDeepStrictEqual(current[name], value)) attributes[name] = value;
  }
  if (Object.keys(attributes).length === 0) return undefined;
  const deviceId = typeof incomingData.device_id === 'string' ? incomingData.device_id : local.data.device_id;
  return typeof deviceId === 'string' ? { deviceId, attributes } : undefined;
}

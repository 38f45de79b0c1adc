/**
 * zigbee2mqtt (issue 4 item 1), topics as the zigbee2mqtt docs "MQTT topics and messages" define them:
 *   <base>/<friendly_name>               JSON state (friendly names may contain `/`)
 *   <base>/<friendly_name>/availability  `online`/`offline` (legacy) or {"state":"online"}; becomes `available`
 *   <base>/bridge/devices                retained JSON array: model, vendor, exposes → device meta
 *   <base>/<friendly_name>/set           commands (downlink; never ingested), also …/get, …/set/<attr>
 * Every other <base>/bridge/* topic (state, info, logging, event, response/…) is not ingested.
 * Device ids: `z2m:<friendly_name>`.
 */
import { z } from 'zod';
import type { DeviceCommand } from '../../store/types.js';
import type { IngestAdapter, LocalUpdate, OutgoingMessage, ParseResult } from '../adapter.js';
import { checkSchema, parseJsonObject, parseJsonValue, payloadText, reject } from '../payload.js';
import {
  availabilityWord,
  badDeviceId,
  checkMaxBytes,
  checkTopicLevel,
  commandable,
  DEFAULT_MAX_PAYLOAD_BYTES,
  deviceIdFor,
  message,
  stateResult,
  without,
} from './common.js';

export interface Zigbee2MqttAdapterOptions {
  /** zigbee2mqtt's `mqtt.base_topic`; default `zigbee2mqtt`. */
  readonly baseTopic?: string;
  readonly maxPayloadBytes?: number;
  /** Attributes not stored (they change on every report); default `linkquality`, `last_seen`. */
  readonly ignoreAttributes?: readonly string[];
}

export const Z2M_ID_PREFIX = 'z2m:';

const StateSchema = z.record(z.string().min(1).max(128), z.unknown()).refine((o) => Object.keys(o).length <= 256, { message: 'at most 256 attributes' });

const ExposeSchema = z.looseObject({ type: z.string().optional(), name: z.string().optional(), property: z.string().optional() });
const BridgeDeviceSchema = z.looseObject({
  friendly_name: z.string().min(1),
  type: z.string().optional(),
  definition: z
    .looseObject({ model: z.string().nullish(), vendor: z.string().nullish(), description: z.string().nullish(), exposes: z.array(ExposeSchema).optional() })
    .nullish(),
  model_id: z.string().nullish(),
  manufacturer: z.string().nullish(),
});
const BridgeDevicesSchema = z.array(BridgeDeviceSchema).max(10_000);
type BridgeDevice = z.infer<typeof BridgeDeviceSchema>;

const AvailabilityJson = z.looseObject({ state: z.enum(['online', 'offline']) });

/** Exposes of these types name what a device is; otherwise a well-known feature does (critical devices included). */
const TYPED_EXPOSES = ['light', 'switch', 'lock', 'climate', 'cover', 'fan'];
const FEATURE_TYPES: ReadonlyArray<[string, string]> = [
  ['smoke', 'smoke'],
  ['water_leak', 'water_leak'],
  ['contact', 'contact'],
  ['occupancy', 'motion'],
  ['temperature', 'sensor'],
];

/** The device type from a bridge/devices entry's exposes (design: meta `type`). */
export function z2mDeviceType(device: BridgeDevice): string | null {
  const exposes = device.definition?.exposes ?? [];
  const typed = exposes.find((e) => e.type !== undefined && TYPED_EXPOSES.includes(e.type));
  if (typed?.type) return typed.type;
  const names = new Set(exposes.map((e) => e.property ?? e.name));
  for (const [feature, type] of FEATURE_TYPES) if (names.has(feature)) return type;
  return null;
}

/** A friendly name usable as topic levels: no empty level, no wildcard. */
function validName(name: string): boolean {
  return name.length > 0 && !/[+#]/.test(name) && name.split('/').every((l) => l.length > 0);
}

export function createZigbee2MqttAdapter(options: Zigbee2MqttAdapterOptions = {}): IngestAdapter {
  const base = options.baseTopic ?? 'zigbee2mqtt';
  const maxBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  checkTopicLevel('zigbee2mqtt', 'baseTopic', base);
  checkMaxBytes('zigbee2mqtt', maxBytes);
  const ignored = new Set(options.ignoreAttributes ?? ['linkquality', 'last_seen']);
  const prefix = `${base}/`;

  function parseDevices(payload: Buffer): ParseResult {
    const decoded = parseJsonValue(payload, Math.max(maxBytes, 4 * 1024 * 1024)); // a big network's device list is large
    if (!decoded.ok) return decoded;
    const parsed = checkSchema(decoded.value, BridgeDevicesSchema);
    if (!parsed.ok) return parsed;
    const updates: LocalUpdate[] = [];
    for (const device of parsed.value) {
      const deviceId = deviceIdFor(Z2M_ID_PREFIX, device.friendly_name);
      if (device.type === 'Coordinator' || deviceId === undefined) continue;
      updates.push({
        kind: 'meta',
        deviceId,
        name: device.friendly_name,
        type: z2mDeviceType(device),
        room: null,
        manufacturer: device.definition?.vendor ?? device.manufacturer ?? null,
        model: device.definition?.model ?? device.model_id ?? null,
      });
    }
    return { ok: true, updates };
  }

  function parseAvailability(deviceId: string, payload: Buffer): ParseResult {
    const text = payloadText(payload, 1024);
    if (!text.ok) return text;
    const word = availabilityWord(text.value);
    if (word !== undefined) return { ok: true, updates: [{ kind: 'availability', deviceId, available: word }] };
    const json = parseJsonObject(payload, 1024, AvailabilityJson);
    if (!json.ok) return reject('invalid_availability', `expected online, offline or {"state":"online"}, got ${JSON.stringify(text.value.slice(0, 64))}`);
    return { ok: true, updates: [{ kind: 'availability', deviceId, available: json.value.state === 'online' }] };
  }

  function parse(topic: string, payload: Buffer): ParseResult | undefined {
    if (!topic.startsWith(prefix)) return undefined;
    const rest = topic.slice(prefix.length);
    if (rest === 'bridge/devices') return parseDevices(payload);
    if (rest === 'bridge' || rest.startsWith('bridge/')) return undefined;
    const levels = rest.split('/');
    // …/set, …/get, …/set/<attr>: commands, not states (zigbee2mqtt forbids these words in friendly names).
    if (levels.some((l) => l === 'set' || l === 'get')) return undefined;
    const availability = levels[levels.length - 1] === 'availability' && levels.length > 1;
    const name = availability ? levels.slice(0, -1).join('/') : rest;
    const deviceId = deviceIdFor(Z2M_ID_PREFIX, name);
    if (deviceId === undefined || !validName(name)) return badDeviceId(name);
    if (availability) return parseAvailability(deviceId, payload);
    const parsed = parseJsonObject(payload, maxBytes, StateSchema);
    return parsed.ok ? stateResult(deviceId, without(parsed.value, ignored)) : parsed;
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    const name = command.deviceId.slice(Z2M_ID_PREFIX.length);
    if (!command.deviceId.startsWith(Z2M_ID_PREFIX) || !validName(name)) return [];
    const attributes = Object.fromEntries(commandable(command.attributes).filter(([name]) => !ignored.has(name)));
    if (Object.keys(attributes).length === 0) return [];
    return [message(`${prefix}${name}/set`, JSON.stringify(attributes))];
  }

  return {
    name: 'zigbee2mqtt',
    filters: [`${base}/#`],
    parse,
    commandsFor,
    ownsDevice: (deviceId) => deviceId.startsWith(Z2M_ID_PREFIX) && deviceId.length > Z2M_ID_PREFIX.length,
  };
}

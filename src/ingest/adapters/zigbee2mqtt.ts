/**
 * zigbee2mqtt (docs/devices.md §zigbee2mqtt), topics as the zigbee2mqtt docs "MQTT topics and messages" define them:
 *   <base>/<friendly_name>               JSON state (friendly names may contain `/`)
 *   <base>/<friendly_name>/availability  `online`/`offline` (legacy) or {"state":"online"}; becomes `available`
 *   <base>/bridge/devices                retained JSON array: model, vendor, exposes → device meta
 *   <base>/<friendly_name>/set           commands (downlink; never ingested), also …/get, …/set/<attr>
 * Every other <base>/bridge/* topic (state, info, logging, event, response/…) is not ingested.
 * Device ids: `z2m:<friendly_name>`. Commands carry only what the device's exposes mark settable (access bit 2,
 * zigbee2mqtt docs "Exposes": 1 published, 2 settable with /set, 4 readable with /get): a server-side edit of a
 * motion sensor's `occupancy` is never published to its /set.
 */
import { z } from 'zod';
import type { DeviceCommand } from '../../store/types.js';
import type { IngestAdapter, LocalUpdate, OutgoingMessage, ParseResult } from '../adapter.js';
import { checkSchema, parseJsonObject, parseJsonValue, payloadText, reject } from '../payload.js';
import { availabilityWord, badDeviceId, checkMaxBytes, checkTopicLevel, commandable, DEFAULT_MAX_PAYLOAD_BYTES, deviceIdFor, message, stateResult } from './common.js';
import { DEFAULT_IGNORED_ATTRIBUTES } from './config.js';
import { ignoreList } from './ignore.js';

export interface Zigbee2MqttAdapterOptions {
  /** zigbee2mqtt's `mqtt.base_topic`; default `zigbee2mqtt`. */
  readonly baseTopic?: string;
  readonly maxPayloadBytes?: number;
  /** Attributes not stored (they change on every report); default `linkquality`, `last_seen`. */
  readonly ignoreAttributes?: readonly string[];
  /** Room names by friendly name. */
  readonly rooms?: Readonly<Record<string, string>>;
}

export const Z2M_ID_PREFIX = 'z2m:';

const StateSchema = z.record(z.string().min(1).max(128), z.unknown()).refine((o) => Object.keys(o).length <= 256, { message: 'at most 256 attributes' });

interface Expose {
  readonly type?: string | undefined;
  readonly name?: string | undefined;
  readonly property?: string | undefined;
  readonly access?: number | undefined;
  readonly features?: readonly Expose[] | undefined;
}
const ExposeSchema: z.ZodType<Expose> = z.looseObject({
  type: z.string().optional(),
  name: z.string().optional(),
  property: z.string().optional(),
  access: z.number().int().optional(),
  get features() {
    return z.array(ExposeSchema).optional();
  },
});
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

/** Access bit of an expose that may be set with <name>/set (zigbee2mqtt docs "Exposes"). */
const ACCESS_SET = 2;

/**
 * State attributes that are never commands, used for a device whose exposes are not known yet (bridge/devices not
 * seen since the start): sensor readings and device status.
 */
export const Z2M_READ_ONLY = new Set([
  'occupancy', 'presence', 'contact', 'water_leak', 'smoke', 'gas', 'carbon_monoxide', 'tamper', 'vibration', 'action',
  'battery', 'battery_low', 'voltage', 'linkquality', 'last_seen', 'temperature', 'device_temperature', 'humidity',
  'pressure', 'illuminance', 'illuminance_lux', 'co2', 'voc', 'pm25', 'formaldehyd', 'power', 'energy', 'current',
  'update', 'update_available',
]);

/** The properties a device's exposes allow to set (composite and specific exposes carry theirs in `features`). */
export function z2mSettable(exposes: readonly Expose[]): Set<string> {
  const out = new Set<string>();
  const visit = (list: readonly Expose[], depth: number): void => {
    for (const e of list) {
      if (e.property !== undefined && e.access !== undefined && (e.access & ACCESS_SET) !== 0) out.add(e.property);
      if (e.features && depth < 8) visit(e.features, depth + 1);
    }
  };
  visit(exposes, 0);
  return out;
}

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
  const ignored = ignoreList(options.ignoreAttributes ?? DEFAULT_IGNORED_ATTRIBUTES.zigbee2mqtt);
  const rooms = options.rooms ?? {};
  const prefix = `${base}/`;
  /** Settable properties by friendly name, from the last bridge/devices (a device not in it: Z2M_READ_ONLY applies). */
  let settable = new Map<string, ReadonlySet<string>>();

  function parseDevices(payload: Buffer): ParseResult {
    const decoded = parseJsonValue(payload, Math.max(maxBytes, 4 * 1024 * 1024)); // a big network's device list is large
    if (!decoded.ok) return decoded;
    const parsed = checkSchema(decoded.value, BridgeDevicesSchema);
    if (!parsed.ok) return parsed;
    const updates: LocalUpdate[] = [];
    const known = new Map<string, ReadonlySet<string>>();
    for (const device of parsed.value) {
      const deviceId = deviceIdFor(Z2M_ID_PREFIX, device.friendly_name);
      if (device.type === 'Coordinator' || deviceId === undefined) continue;
      if (device.definition?.exposes) known.set(device.friendly_name, z2mSettable(device.definition.exposes));
      updates.push({
        kind: 'meta',
        deviceId,
        name: device.friendly_name,
        type: z2mDeviceType(device),
        room: rooms[device.friendly_name] ?? null,
        manufacturer: device.definition?.vendor ?? device.manufacturer ?? null,
        model: device.definition?.model ?? device.model_id ?? null,
      });
    }
    settable = known;
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
    return parsed.ok ? stateResult(deviceId, ignored.apply(parsed.value)) : parsed;
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    const name = command.deviceId.slice(Z2M_ID_PREFIX.length);
    if (!command.deviceId.startsWith(Z2M_ID_PREFIX) || !validName(name)) return [];
    const known = settable.get(name);
    const allowed = (attribute: string): boolean => !ignored.has(attribute) && (known ? known.has(attribute) : !Z2M_READ_ONLY.has(attribute));
    const attributes = Object.fromEntries(commandable(command.attributes).filter(([attribute]) => allowed(attribute)));
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

/**
 * Who a Shelly is (name, model, type, room), so it does not appear as a bare topic prefix. Sources, as the Shelly
 * API documentation describes them:
 *   - Gen2+ "Shelly.GetDeviceInfo" (Shelly service; RPC over MQTT: a request frame on `<prefix>/rpc` with our `src`,
 *     the response frame on `<src>/rpc`): `{id, mac, model, gen, fw_id, ver, app, name}`. Asked once when a device
 *     is first heard in this process, and again when it comes back online (it may have been renamed).
 *   - announces: `<prefix>/announce` and `<gen1Topic>/announce` (Gen1 firmware, and Gen2 scripts that keep that
 *     Gen1 topic alive), `{id, model, mac, …}` (a `gen` ≥ 2 says the id is a Gen2 prefix).
 * The type comes from the components a device reports (switch, light, cover, smoke, flood, …), else from its app or
 * model name. The room comes from `ingest.adapters.shelly.rooms` (Shelly devices carry none). Memory is bounded.
 */
import { z } from 'zod';
import type { LocalUpdate, OutgoingMessage, ParseResult } from '../adapter.js';
import { parseJsonObject, reject } from '../payload.js';
import { deviceIdFor, message } from './common.js';

export const SHELLY_ID_PREFIX = 'shelly:';
const MAX_DEVICES = 10_000;
const MAX_PENDING = 1000;

const DeviceInfoSchema = z.looseObject({
  id: z.string().min(1).max(200),
  name: z.string().max(200).nullish(),
  model: z.string().max(200).nullish(),
  app: z.string().max(200).nullish(),
  gen: z.number().nullish(),
});
type DeviceInfo = z.infer<typeof DeviceInfoSchema>;
const RpcFrame = z.looseObject({ id: z.union([z.number(), z.string()]), result: z.unknown().optional(), error: z.unknown().optional() });

/** Component types that name what a device is, strongest first. */
const COMPONENT_TYPES: ReadonlyArray<[RegExp, string]> = [
  [/^cover$/, 'cover'],
  [/^(light|rgb|rgbw|rgbcct|cct)$/, 'light'],
  [/^switch$/, 'switch'],
  [/^smoke$/, 'smoke'],
  [/^flood$/, 'water_leak'],
  [/^(temperature|humidity|illuminance|em|em1|pm1|emdata|em1data|voltmeter|input|devicepower)$/, 'sensor'],
];
/** App (Gen2) or model (Gen1) names, when no component says it. */
const NAME_TYPES: ReadonlyArray<[RegExp, string]> = [
  [/dimmer|rgbw|bulb|duo|vintage|shdm|shblb|shrgbw|shbduo|shvin/, 'light'],
  [/smoke|shsm/, 'smoke'],
  [/flood|shwt/, 'water_leak'],
  [/shdw|door/, 'contact'],
  [/shmos|motion/, 'motion'],
  [/plug|shplg|shsw|(^|\W)(plus|pro|mini)?\s?[1-4](pm)?(\W|$)/, 'switch'],
  [/ht|shht|em|i4|i3|shix|shbtn/, 'sensor'],
];

export function shellyType(components: Iterable<string>, names: string): string | null {
  const seen = [...components];
  for (const [re, type] of COMPONENT_TYPES) if (seen.some((c) => re.test(c))) return type;
  const lower = names.toLowerCase();
  for (const [re, type] of NAME_TYPES) if (re.test(lower)) return type;
  return null;
}

interface Known {
  components: Set<string>;
  info: DeviceInfo | undefined;
  asked: boolean;
  lastType: string | null | undefined;
}

export interface ShellyInfoOptions {
  /** `src` of our RPC frames; replies arrive on `<src>/rpc`. */
  readonly src: string;
  /** Whether to send Shelly.GetDeviceInfo at all. */
  readonly ask: boolean;
  /** Room names by the device id after `shelly:` (Gen2: the topic prefix; Gen1: `<gen1Topic>/<id>`). */
  readonly rooms: Readonly<Record<string, string>>;
  readonly gen1: string | null;
  readonly maxBytes: number;
}

export interface ShellyInfo {
  /** A Gen2 device was heard (with these component types): the GetDeviceInfo request to send, a meta when its type changed. */
  heard(prefix: string, componentTypes: readonly string[], cameOnline: boolean): { publish: OutgoingMessage[]; updates: LocalUpdate[] };
  /** A frame on `<src>/rpc`: our GetDeviceInfo's answer gives a meta; any other reply is not ingested. */
  reply(payload: Buffer): ParseResult | undefined;
  /** An announce; `prefix` when it came on `<prefix>/announce`, else (the Gen1 topic) the id says which device. */
  announce(prefix: string | undefined, payload: Buffer): ParseResult;
}

export function createShellyInfo(options: ShellyInfoOptions): ShellyInfo {
  const devices = new Map<string, Known>();
  /** Request id → prefix of the GetDeviceInfo requests not answered yet (oldest dropped beyond MAX_PENDING). */
  const pending = new Map<number, string>();
  let nextId = 0;

  function known(key: string): Known {
    let k = devices.get(key);
    if (!k) {
      if (devices.size >= MAX_DEVICES) devices.clear();
      k = { components: new Set(), info: undefined, asked: false, lastType: undefined };
      devices.set(key, k);
    }
    return k;
  }

  function meta(key: string, k: Known): LocalUpdate[] {
    const deviceId = deviceIdFor(SHELLY_ID_PREFIX, key);
    if (!deviceId || !k.info) return [];
    const type = shellyType(k.components, `${k.info.app ?? ''} ${k.info.model ?? ''}`);
    k.lastType = type;
    const name = k.info.name && k.info.name.trim().length > 0 ? k.info.name.trim() : k.info.id;
    return [{ kind: 'meta', deviceId, name, type, room: options.rooms[key] ?? null, manufacturer: 'Shelly', model: k.info.model ?? k.info.app ?? null }];
  }

  function request(prefix: string): OutgoingMessage {
    nextId = (nextId % 1_000_000_000) + 1;
    pending.set(nextId, prefix);
    if (pending.size > MAX_PENDING) pending.delete(pending.keys().next().value ?? nextId);
    return message(`${prefix}/rpc`, JSON.stringify({ id: nextId, src: options.src, method: 'Shelly.GetDeviceInfo' }));
  }

  return {
    heard(prefix, componentTypes, cameOnline) {
      const k = known(prefix);
      for (const c of componentTypes) k.components.add(c);
      const publish: OutgoingMessage[] = [];
      if (options.ask && (!k.asked || cameOnline)) {
        k.asked = true;
        publish.push(request(prefix));
      }
      const changed = k.info !== undefined && shellyType(k.components, `${k.info.app ?? ''} ${k.info.model ?? ''}`) !== k.lastType;
      return { publish, updates: changed ? meta(prefix, k) : [] };
    },

    reply(payload) {
      const frame = parseJsonObject(payload, options.maxBytes, RpcFrame);
      if (!frame.ok) return frame;
      const prefix = typeof frame.value.id === 'number' ? pending.get(frame.value.id) : undefined;
      if (prefix === undefined) return undefined; // a reply to a command (Switch.Set, …) or to someone else
      pending.delete(frame.value.id as number);
      const info = DeviceInfoSchema.safeParse(frame.value.result);
      if (!info.success) return { ok: true, updates: [] }; // an error frame: RPC over MQTT refused, nothing to learn
      const k = known(prefix);
      k.info = info.data;
      return { ok: true, updates: meta(prefix, k) };
    },

    announce(prefix, payload) {
      const parsed = parseJsonObject(payload, options.maxBytes, DeviceInfoSchema);
      if (!parsed.ok) return parsed;
      const info = parsed.value;
      if (prefix === undefined && !/^[\w.:-]+$/.test(info.id)) return reject('invalid_device_id', `announced id ${JSON.stringify(info.id.slice(0, 64))}`);
      const key = prefix ?? ((info.gen ?? 1) >= 2 || options.gen1 === null ? info.id : `${options.gen1}/${info.id}`);
      const k = known(key);
      k.info = info;
      return { ok: true, updates: meta(key, k) };
    },
  };
}

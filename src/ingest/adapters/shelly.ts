/**
 * Shelly (docs/devices.md §Shelly), topics as the Shelly Gen2 API docs "MQTT" and "Notifications" define them:
 *   <prefix>/status/<component>:<id>  the component's whole status (status_ntf), e.g. switch:0 {output, apower, …}
 *   <prefix>/events/rpc               NotifyStatus / NotifyFullStatus deltas: params.<component>:<id> (rpc_ntf)
 *   <prefix>/online                   `true` / `false` (the device's LWT); becomes `available`
 *   <prefix>/rpc                      commands (downlink): JSON-RPC frames, e.g. Switch.Set {id, on}
 * Component statuses are flattened one level — attribute `switch:0.output` — so that partial deltas merge into the
 * stored state without losing the fields they leave out (seed: state is one object of attributes).
 *   <prefix>/announce, <src>/rpc     who the device is (shelly-info.ts: announces, Shelly.GetDeviceInfo replies)
 * Gen1: shellies/<id>/relay/<n> `on`/`off`, …/relay/<n>/power W, shellies/<id>/online, shellies/announce; commands on
 * shellies/<id>/relay/<n>/command. Device ids: `shelly:<prefix>` (Gen1: `shelly:shellies/<id>`).
 * Each component's status passes the ignore list first (`aenergy.by_minute` and `aenergy.minute_ts` change every
 * minute without meaning anything; docs/devices.md).
 */
import { z } from 'zod';
import type { DeviceCommand } from '../../store/types.js';
import { levelsMatch, type IngestAdapter, type LocalUpdate, type OutgoingMessage, type ParseResult } from '../adapter.js';
import { parseJsonObject, payloadText, reject } from '../payload.js';
import {
  availabilityUpdate,
  badDeviceId,
  checkMaxBytes,
  checkTopicLevel,
  commandable,
  DEFAULT_MAX_PAYLOAD_BYTES,
  deviceIdFor,
  message,
  plainValue,
  stateResult,
} from './common.js';
import { DEFAULT_IGNORED_ATTRIBUTES } from './config.js';
import { ignoreList, type IgnoreList } from './ignore.js';
import { createShellyInfo, SHELLY_ID_PREFIX } from './shelly-info.js';

export interface ShellyAdapterOptions {
  /** Topic filters of Gen2 device prefixes (Shelly `mqtt.topic_prefix`); default `+` (the device id, one level). */
  readonly prefixFilters?: readonly string[];
  /** Gen1 root topic; default `shellies`; null turns Gen1 off. */
  readonly gen1Topic?: string | null;
  /** `src` of the JSON-RPC frames sent (replies go to `<src>/rpc`); default `inbetweenies`. */
  readonly rpcSource?: string;
  readonly maxPayloadBytes?: number;
  /** Fields of a component's status not stored (dotted paths allowed); default the per-minute energy buckets. */
  readonly ignoreAttributes?: readonly string[];
  /** Ask each Gen2 device for its name and model (Shelly.GetDeviceInfo) when first heard; default true. */
  readonly askDeviceInfo?: boolean;
  /** Room names by the device id after `shelly:`. */
  readonly rooms?: Readonly<Record<string, string>>;
}

export { SHELLY_ID_PREFIX };
const COMPONENT_RE = /^([a-z][a-z0-9_]*):(\d{1,3})$/;
/** Fields that describe a report rather than the device's state. */
const SKIPPED_FIELDS = new Set(['id', 'source']);

const Status = z.record(z.string(), z.unknown());
const RpcNotification = z.looseObject({ method: z.string(), params: z.record(z.string(), z.unknown()).optional() });

/** `{output: true, apower: 3}` of `switch:0` → `{'switch:0.output': true, 'switch:0.apower': 3}`, ignored fields left out. */
export function flattenComponent(key: string, status: Readonly<Record<string, unknown>>, ignored: IgnoreList = ignoreList([])): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(ignored.apply(status))) if (!SKIPPED_FIELDS.has(field)) out[`${key}.${field}`] = value;
  return ignored.apply(out);
}

/** `switch:0` → `switch`. */
const componentType = (key: string): string => key.slice(0, key.indexOf(':'));

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The RPC frames that carry a command's attributes: one per component (Switch.Set, Light.Set, Cover.GoToPosition). */
export function shellyRpcCalls(attributes: Readonly<Record<string, unknown>>): Array<{ method: string; params: Record<string, unknown> }> {
  const byComponent = new Map<string, Record<string, unknown>>();
  for (const [name, value] of commandable(attributes)) {
    const dot = name.indexOf('.');
    const match = COMPONENT_RE.exec(name.slice(0, dot));
    if (dot < 0 || !match) continue;
    const fields = byComponent.get(name.slice(0, dot)) ?? {};
    fields[name.slice(dot + 1)] = value;
    byComponent.set(name.slice(0, dot), fields);
  }
  const calls: Array<{ method: string; params: Record<string, unknown> }> = [];
  for (const [key, f] of byComponent) {
    const [, type, idText] = COMPONENT_RE.exec(key) ?? [];
    const id = Number(idText);
    if ((type === 'switch' || type === 'light') && typeof f.output === 'boolean') {
      const params: Record<string, unknown> = { id, on: f.output };
      if (type === 'light' && typeof f.brightness === 'number') params.brightness = f.brightness;
      calls.push({ method: type === 'switch' ? 'Switch.Set' : 'Light.Set', params });
    } else if (type === 'light' && typeof f.brightness === 'number') {
      calls.push({ method: 'Light.Set', params: { id, brightness: f.brightness } });
    } else if (type === 'cover' && typeof (f.target_pos ?? f.current_pos) === 'number') {
      calls.push({ method: 'Cover.GoToPosition', params: { id, pos: f.target_pos ?? f.current_pos } });
    }
  }
  return calls;
}

export function createShellyAdapter(options: ShellyAdapterOptions = {}): IngestAdapter {
  const prefixFilters = options.prefixFilters ?? ['+'];
  const gen1 = options.gen1Topic === undefined ? 'shellies' : options.gen1Topic;
  if (gen1 !== null) checkTopicLevel('shelly', 'gen1Topic', gen1);
  const src = options.rpcSource ?? 'inbetweenies';
  checkTopicLevel('shelly', 'rpcSource', src);
  const maxBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  checkMaxBytes('shelly', maxBytes);
  for (const f of prefixFilters) {
    if (f.length === 0 || f.includes('#')) throw new RangeError(`shelly adapter: prefixFilters entries must be non-empty filters without #, given ${JSON.stringify(f)}`);
  }
  const compiledPrefixes = prefixFilters.map((f) => f.split('/'));
  const ignored = ignoreList(options.ignoreAttributes ?? DEFAULT_IGNORED_ATTRIBUTES.shelly);
  const info = createShellyInfo({ src, ask: options.askDeviceInfo ?? true, rooms: options.rooms ?? {}, gen1, maxBytes });
  let rpcId = 0;

  /** The result of a Gen2 message, with what the device-info tracker adds (a GetDeviceInfo request, a meta). */
  function heard(prefix: string, result: ParseResult, components: readonly string[], cameOnline = false): ParseResult {
    if (!result.ok) return result;
    const extra = info.heard(prefix, components, cameOnline);
    const updates: LocalUpdate[] = [...extra.updates, ...result.updates];
    return { ok: true, updates, ...(extra.publish.length > 0 ? { publish: extra.publish } : {}) };
  }

  function parseGen2(prefix: string, rest: readonly string[], payload: Buffer): ParseResult | undefined {
    const deviceId = deviceIdFor(SHELLY_ID_PREFIX, prefix);
    if (deviceId === undefined) return badDeviceId(prefix);
    if (rest.length === 1 && rest[0] === 'online') {
      const result = availabilityUpdate(deviceId, payload);
      const online = result.ok && result.updates.some((u) => u.kind === 'availability' && u.available);
      return heard(prefix, result, [], online);
    }
    if (rest.length === 1 && rest[0] === 'announce') return info.announce(prefix, payload);
    if (rest.length === 2 && rest[0] === 'status') {
      const key = rest[1] ?? '';
      if (!COMPONENT_RE.test(key)) return key.includes(':') ? reject('invalid_topic', `component ${JSON.stringify(key.slice(0, 64))}`) : undefined;
      const parsed = parseJsonObject(payload, maxBytes, Status);
      return parsed.ok ? heard(prefix, stateResult(deviceId, flattenComponent(key, parsed.value, ignored)), [componentType(key)]) : parsed;
    }
    if (rest.length === 2 && rest[0] === 'events' && rest[1] === 'rpc') {
      const parsed = parseJsonObject(payload, maxBytes, RpcNotification);
      if (!parsed.ok) return parsed;
      const { method, params } = parsed.value;
      if (method !== 'NotifyStatus' && method !== 'NotifyFullStatus') return undefined; // NotifyEvent: button presses etc.
      let attributes: Record<string, unknown> = {};
      const components: string[] = [];
      for (const [key, status] of Object.entries(params ?? {})) {
        if (!COMPONENT_RE.test(key) || !isRecord(status)) continue;
        components.push(componentType(key));
        attributes = { ...attributes, ...flattenComponent(key, status, ignored) };
      }
      return heard(prefix, stateResult(deviceId, attributes), components);
    }
    return undefined;
  }

  function parseGen1(levels: readonly string[], payload: Buffer): ParseResult | undefined {
    const [, id = '', kind, n, leaf] = levels;
    const deviceId = deviceIdFor(`${SHELLY_ID_PREFIX}${gen1}/`, id);
    if (deviceId === undefined) return badDeviceId(id);
    if (levels.length === 3 && kind === 'online') return availabilityUpdate(deviceId, payload);
    if (kind !== 'relay' || n === undefined || !/^\d{1,2}$/.test(n) || (levels.length === 5 && leaf !== 'power') || levels.length > 5) return undefined;
    const text = payloadText(payload, 64);
    if (!text.ok) return text;
    if (leaf === 'power') {
      const watts = plainValue(text.value);
      if (typeof watts !== 'number') return reject('invalid_schema', `relay power: expected a number, got ${JSON.stringify(text.value.slice(0, 64))}`);
      return { ok: true, updates: [{ kind: 'state', deviceId, attributes: { [`switch:${n}.apower`]: watts } }] };
    }
    const word = text.value.trim();
    if (word !== 'on' && word !== 'off') return reject('invalid_schema', `relay: expected on or off, got ${JSON.stringify(text.value.slice(0, 64))}`);
    return { ok: true, updates: [{ kind: 'state', deviceId, attributes: { [`switch:${n}.output`]: word === 'on' } }] };
  }

  function parse(topic: string, payload: Buffer): ParseResult | undefined {
    if (topic === replyTopic) return info.reply(payload);
    const levels = topic.split('/');
    if (gen1 !== null && levels[0] === gen1) {
      if (levels.length === 2 && levels[1] === 'announce') return info.announce(undefined, payload);
      return levels.length >= 3 ? parseGen1(levels, payload) : undefined;
    }
    for (const filter of compiledPrefixes) {
      const n = filter.length;
      if (levels.length <= n || !levelsMatch(filter, levels.slice(0, n))) continue;
      const rest = levels.slice(n);
      if (rest[0] !== 'online' && rest[0] !== 'status' && rest[0] !== 'events' && rest[0] !== 'announce') continue;
      return parseGen2(levels.slice(0, n).join('/'), rest, payload);
    }
    return undefined;
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    if (!command.deviceId.startsWith(SHELLY_ID_PREFIX)) return [];
    const prefix = command.deviceId.slice(SHELLY_ID_PREFIX.length);
    if (prefix.length === 0 || /[+#]/.test(prefix)) return [];
    if (gen1 !== null && prefix.startsWith(`${gen1}/`)) {
      return Object.entries(command.attributes).flatMap(([name, value]) => {
        const m = /^switch:(\d{1,2})\.output$/.exec(name);
        return m && typeof value === 'boolean' ? [message(`${prefix}/relay/${m[1]}/command`, value ? 'on' : 'off')] : [];
      });
    }
    return shellyRpcCalls(command.attributes).map((call) => {
      rpcId = (rpcId % 1_000_000_000) + 1;
      return message(`${prefix}/rpc`, JSON.stringify({ id: rpcId, src, method: call.method, params: call.params }));
    });
  }

  const replyTopic = `${src}/rpc`;
  const filters = [replyTopic, ...prefixFilters.flatMap((p) => [`${p}/online`, `${p}/status/+`, `${p}/events/rpc`, `${p}/announce`])];
  if (gen1 !== null) filters.push(`${gen1}/announce`, `${gen1}/+/online`, `${gen1}/+/relay/+`, `${gen1}/+/relay/+/power`);
  return {
    name: 'shelly',
    filters,
    parse,
    commandsFor,
    ownsDevice: (deviceId) => deviceId.startsWith(SHELLY_ID_PREFIX) && deviceId.length > SHELLY_ID_PREFIX.length,
  };
}

/**
 * Tasmota (docs/devices.md §Tasmota), topics as the Tasmota docs "MQTT" define them (FullTopic `%prefix%/%topic%/`):
 *   tele/<topic>/STATE    JSON telemetry (POWER, Dimmer, …; uptime/heap/wifi noise dropped)
 *   tele/<topic>/SENSOR   JSON sensor readings ({"AM2301":{"Temperature":…}, "ENERGY":{…}}; `Time` dropped)
 *   tele/<topic>/LWT      `Online` / `Offline`; becomes `available`
 *   stat/<topic>/RESULT   JSON command results; only state attributes (POWER<n>, Dimmer, …) are kept
 *   stat/<topic>/POWER<n> `ON` / `OFF`
 *   tasmota/discovery/<mac>/config  JSON {t, dn, fn, md, …} → device meta
 *   cmnd/<topic>/<Command>          commands (downlink): one message per attribute, e.g. cmnd/plug/POWER1 ON
 * Device ids: `tasmota:<topic>`.
 */
import { z } from 'zod';
import type { DeviceCommand } from '../../store/types.js';
import type { IngestAdapter, OutgoingMessage, ParseResult } from '../adapter.js';
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
  scalarPayload,
  stateResult,
} from './common.js';
import { DEFAULT_IGNORED_ATTRIBUTES } from './config.js';
import { ignoreList } from './ignore.js';

export interface TasmotaAdapterOptions {
  /** The three FullTopic prefixes (Tasmota `Prefix1..3`); defaults cmnd, stat, tele. */
  readonly prefixes?: { readonly cmnd?: string; readonly stat?: string; readonly tele?: string };
  /** Tasmota's `SetOption19 0` discovery topic root; default `tasmota/discovery`. */
  readonly discoveryTopic?: string;
  readonly maxPayloadBytes?: number;
  /** Telemetry attributes not stored; defaults to the ones that change on every report. */
  readonly ignoreAttributes?: readonly string[];
  /** Attribute names (regular expressions, anchored) that are device state and may be commanded. */
  readonly commandAttributes?: readonly string[];
  /** Room names by topic. */
  readonly rooms?: Readonly<Record<string, string>>;
}

export const TASMOTA_ID_PREFIX = 'tasmota:';
/** State a Tasmota command of the same name sets (Tasmota docs "Commands"): relays, lights, shutters. */
const DEFAULT_COMMANDS = ['POWER\\d*', 'Dimmer\\d*', 'CT', 'Color\\d*', 'HSBColor\\d*', 'White', 'Channel\\d+', 'Fade', 'Speed', 'Scheme', 'ShutterPosition\\d*'];

const Json = z.record(z.string().min(1).max(128), z.unknown()).refine((o) => Object.keys(o).length <= 256, { message: 'at most 256 attributes' });
const DiscoverySchema = z.looseObject({
  t: z.string().min(1).max(200),
  dn: z.string().max(200).nullish(),
  fn: z.array(z.string().nullable()).nullish(),
  hn: z.string().nullish(),
  md: z.string().max(200).nullish(),
  rl: z.array(z.number()).nullish(),
  lt_st: z.number().nullish(),
});
type Discovery = z.infer<typeof DiscoverySchema>;

/** Tasmota discovery `rl` relay types: 1 relay, 2 light; `lt_st` > 0 a light (Tasmota docs "Home Assistant"). */
function discoveryType(d: Discovery): string | null {
  if ((d.lt_st ?? 0) > 0 || d.rl?.includes(2)) return 'light';
  if (d.rl?.includes(1)) return 'switch';
  return null;
}

export function createTasmotaAdapter(options: TasmotaAdapterOptions = {}): IngestAdapter {
  const cmnd = options.prefixes?.cmnd ?? 'cmnd';
  const stat = options.prefixes?.stat ?? 'stat';
  const tele = options.prefixes?.tele ?? 'tele';
  for (const [name, value] of [['prefixes.cmnd', cmnd], ['prefixes.stat', stat], ['prefixes.tele', tele]] as const) checkTopicLevel('tasmota', name, value);
  const discovery = options.discoveryTopic ?? 'tasmota/discovery';
  if (discovery.length === 0 || /[+#]/.test(discovery)) throw new RangeError(`tasmota adapter: discoveryTopic must be a topic without + #, given ${JSON.stringify(discovery)}`);
  const maxBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  checkMaxBytes('tasmota', maxBytes);
  const ignored = ignoreList(options.ignoreAttributes ?? DEFAULT_IGNORED_ATTRIBUTES.tasmota);
  const rooms = options.rooms ?? {};
  const commandRe = new RegExp(`^(?:${(options.commandAttributes ?? DEFAULT_COMMANDS).join('|')})$`);

  function json(deviceId: string, payload: Buffer, keep: (name: string) => boolean): ParseResult {
    const parsed = parseJsonObject(payload, maxBytes, Json);
    if (!parsed.ok) return parsed;
    const kept = Object.fromEntries(Object.entries(ignored.apply(parsed.value)).filter(([name]) => keep(name)));
    return stateResult(deviceId, kept);
  }

  function parseDiscovery(payload: Buffer): ParseResult {
    const parsed = parseJsonObject(payload, maxBytes, DiscoverySchema);
    if (!parsed.ok) return parsed;
    const d = parsed.value;
    const deviceId = deviceIdFor(TASMOTA_ID_PREFIX, d.t);
    if (deviceId === undefined || d.t.includes('/')) return badDeviceId(d.t);
    const name = d.fn?.find((n): n is string => typeof n === 'string' && n.length > 0) ?? d.dn ?? d.t;
    return { ok: true, updates: [{ kind: 'meta', deviceId, name, type: discoveryType(d), room: rooms[d.t] ?? null, ...(d.md ? { model: d.md } : {}) }] };
  }

  function parse(topic: string, payload: Buffer): ParseResult | undefined {
    const levels = topic.split('/');
    if (topic.startsWith(`${discovery}/`)) {
      const rest = topic.slice(discovery.length + 1).split('/');
      return rest.length === 2 && rest[1] === 'config' ? parseDiscovery(payload) : undefined; // …/sensors: not ingested
    }
    if (levels.length !== 3) return undefined;
    const [prefix = '', device = '', leaf = ''] = levels;
    if (prefix !== tele && prefix !== stat) return undefined;
    const deviceId = deviceIdFor(TASMOTA_ID_PREFIX, device);
    if (deviceId === undefined) return badDeviceId(device);
    if (prefix === tele) {
      if (leaf === 'LWT') return availabilityUpdate(deviceId, payload);
      if (leaf === 'STATE' || leaf === 'SENSOR') return json(deviceId, payload, () => true);
      return undefined; // INFO1..3, RESULT on tele, MARGINS…: not state
    }
    if (leaf === 'RESULT') return json(deviceId, payload, (name) => commandRe.test(name));
    if (/^POWER\d*$/.test(leaf)) {
      const text = payloadText(payload, 64);
      if (!text.ok) return text;
      const value = text.value.trim().toUpperCase();
      if (value !== 'ON' && value !== 'OFF') return reject('invalid_schema', `${leaf}: expected ON or OFF, got ${JSON.stringify(text.value.slice(0, 64))}`);
      return { ok: true, updates: [{ kind: 'state', deviceId, attributes: { [leaf]: value } }] };
    }
    return undefined; // STATUS<n>, UPGRADE, …
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    if (!command.deviceId.startsWith(TASMOTA_ID_PREFIX)) return [];
    const topic = command.deviceId.slice(TASMOTA_ID_PREFIX.length);
    if (topic.length === 0 || /[/+#]/.test(topic)) return [];
    return commandable(command.attributes)
      .filter(([name, value]) => commandRe.test(name) && (typeof value !== 'object' || value === null))
      .map(([name, value]) => message(`${cmnd}/${topic}/${name}`, scalarPayload(value)));
  }

  return {
    name: 'tasmota',
    filters: [`${tele}/+/+`, `${stat}/+/+`, `${discovery}/+/config`],
    parse,
    commandsFor,
    ownsDevice: (deviceId) => deviceId.startsWith(TASMOTA_ID_PREFIX) && deviceId.length > TASMOTA_ID_PREFIX.length,
  };
}

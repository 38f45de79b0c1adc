/**
 * Generic topics (docs/devices.md §Generic topics): configured patterns whose levels may be named wildcards, e.g.
 *   home/{device}/{attribute}   plain or JSON value of one attribute
 *   sensors/{device}            JSON object of attributes (or a plain value stored as `valueAttribute`)
 * `{device}` is required; `{attribute}` and `+` (an unnamed wildcard) are optional. Plain payloads have numbers and
 * booleans parsed. Commands go to `commandTopic` (same placeholders): with `{attribute}` one plain message per
 * attribute, without it one JSON object. Device ids: `<idPrefix><device>` (default prefix `generic:`).
 */
import { z } from 'zod';
import type { DeviceCommand } from '../../store/types.js';
import type { IngestAdapter, OutgoingMessage, ParseResult } from '../adapter.js';
import { parseJsonObject, payloadText, reject } from '../payload.js';
import { badDeviceId, checkMaxBytes, commandable, DEFAULT_MAX_PAYLOAD_BYTES, deviceIdFor, message, plainValue, scalarPayload, stateResult } from './common.js';

export interface GenericMapping {
  /** Topic pattern; levels are literals, `+`, `{device}` or `{attribute}`. */
  readonly pattern: string;
  /** `auto` (JSON when it parses, else plain), `json` or `plain`; default auto. */
  readonly payload?: 'auto' | 'json' | 'plain';
  readonly idPrefix?: string;
  /** Attribute a plain value is stored as when the pattern has no `{attribute}`; default `value`. */
  readonly valueAttribute?: string;
  /** Where commands go; omitted: devices of this mapping take no commands. */
  readonly commandTopic?: string;
}

export interface GenericAdapterOptions {
  readonly mappings: readonly GenericMapping[];
  readonly maxPayloadBytes?: number;
}

interface Compiled {
  readonly levels: readonly string[];
  readonly filter: string;
  readonly deviceLevel: number;
  readonly attributeLevel: number;
  readonly payload: 'auto' | 'json' | 'plain';
  readonly idPrefix: string;
  readonly valueAttribute: string;
  readonly commandTopic: string | undefined;
}

const Json = z.record(z.string().min(1).max(128), z.unknown()).refine((o) => Object.keys(o).length <= 256, { message: 'at most 256 attributes' });
const LEVEL_RE = /^(?:\{device\}|\{attribute\}|\+|[^+#{}]+)$/;

function compile(m: GenericMapping, index: number): Compiled {
  const where = `generic adapter: mappings[${index}]`;
  const levels = m.pattern.split('/');
  const bad = levels.find((l) => !LEVEL_RE.test(l));
  if (bad !== undefined) throw new RangeError(`${where}.pattern: each level must be a literal, + , {device} or {attribute}, given ${JSON.stringify(m.pattern)}`);
  const deviceLevel = levels.indexOf('{device}');
  if (deviceLevel < 0 || levels.lastIndexOf('{device}') !== deviceLevel) throw new RangeError(`${where}.pattern: expected exactly one {device} level, given ${JSON.stringify(m.pattern)}`);
  const attributeLevel = levels.indexOf('{attribute}');
  if (attributeLevel >= 0 && levels.lastIndexOf('{attribute}') !== attributeLevel) throw new RangeError(`${where}.pattern: at most one {attribute} level, given ${JSON.stringify(m.pattern)}`);
  if (m.commandTopic !== undefined && (!m.commandTopic.includes('{device}') || /[+#]/.test(m.commandTopic))) {
    throw new RangeError(`${where}.commandTopic: expected a topic with {device} and no wildcards, given ${JSON.stringify(m.commandTopic)}`);
  }
  return {
    levels,
    filter: levels.map((l) => (l.startsWith('{') ? '+' : l)).join('/'),
    deviceLevel,
    attributeLevel,
    payload: m.payload ?? 'auto',
    idPrefix: m.idPrefix ?? 'generic:',
    valueAttribute: m.valueAttribute ?? 'value',
    commandTopic: m.commandTopic,
  };
}

function matches(c: Compiled, levels: readonly string[]): boolean {
  return levels.length === c.levels.length && c.levels.every((l, i) => l.startsWith('{') || l === '+' || l === levels[i]);
}

export function createGenericAdapter(options: GenericAdapterOptions): IngestAdapter {
  const maxBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  checkMaxBytes('generic', maxBytes);
  const mappings = options.mappings.map(compile);

  function value(c: Compiled, payload: Buffer): { ok: true; value: unknown } | ParseResult {
    if (c.payload !== 'plain') {
      const text = payloadText(payload, maxBytes);
      if (!text.ok) return text;
      try {
        return { ok: true, value: JSON.parse(text.value) as unknown };
      } catch (err) {
        if (c.payload === 'json') return reject('invalid_json', err instanceof Error ? err.message : 'not JSON');
        return { ok: true, value: plainValue(text.value) };
      }
    }
    const text = payloadText(payload, maxBytes);
    return text.ok ? { ok: true, value: plainValue(text.value) } : text;
  }

  function parse(topic: string, payload: Buffer): ParseResult | undefined {
    const levels = topic.split('/');
    const c = mappings.find((m) => matches(m, levels));
    if (!c) return undefined;
    const local = levels[c.deviceLevel] ?? '';
    const deviceId = deviceIdFor(c.idPrefix, local);
    if (deviceId === undefined) return badDeviceId(local);
    if (c.attributeLevel < 0 && c.payload !== 'plain' && payload.subarray(0, 16).toString('latin1').trimStart().startsWith('{')) {
      const parsed = parseJsonObject(payload, maxBytes, Json);
      return parsed.ok ? stateResult(deviceId, parsed.value) : parsed;
    }
    const v = value(c, payload);
    if (!('value' in v)) return v;
    const attribute = c.attributeLevel >= 0 ? (levels[c.attributeLevel] ?? '') : c.valueAttribute;
    if (attribute.length === 0 || attribute.length > 128) return reject('invalid_topic', `attribute level ${JSON.stringify(attribute.slice(0, 140))}: expected 1 to 128 characters`);
    return { ok: true, updates: [{ kind: 'state', deviceId, attributes: { [attribute]: v.value } }] };
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    const c = mappings.find((m) => m.commandTopic !== undefined && m.idPrefix.length > 0 && command.deviceId.startsWith(m.idPrefix));
    if (!c?.commandTopic) return [];
    const device = command.deviceId.slice(c.idPrefix.length);
    if (device.length === 0 || /[/+#]/.test(device)) return [];
    const topic = c.commandTopic.replaceAll('{device}', device);
    const attributes = commandable(command.attributes);
    if (!topic.includes('{attribute}')) return attributes.length === 0 ? [] : [message(topic, JSON.stringify(Object.fromEntries(attributes)))];
    return attributes
      .filter(([name]) => !/[/+#]/.test(name) && name.length > 0)
      .map(([name, v]) => message(topic.replaceAll('{attribute}', name), scalarPayload(v, 'true', 'false')));
  }

  return {
    name: 'generic',
    filters: [...new Set(mappings.map((m) => m.filter))],
    parse,
    commandsFor,
    ownsDevice: (deviceId) => mappings.some((m) => m.commandTopic !== undefined && m.idPrefix.length > 0 && deviceId.startsWith(m.idPrefix) && deviceId.length > m.idPrefix.length),
  };
}

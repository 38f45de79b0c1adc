/**
 * Helpers the device adapters share: device ids, availability words, plain-text values, option
 * checks, and the command attributes no device can obey.
 */
import { MAX_ID_LENGTH } from '../../protocol/index.js';
import type { OutgoingMessage, ParseResult } from '../adapter.js';
import { payloadText, reject } from '../payload.js';

/** Device ids carry their ecosystem as a prefix (`z2m:`, `tasmota:`, `shelly:`, `ha:`) so they never collide. */
export function deviceIdFor(prefix: string, local: string): string | undefined {
  const id = `${prefix}${local}`;
  // eslint-disable-next-line no-control-regex
  if (local.length === 0 || id.length > MAX_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(local)) return undefined;
  return id;
}

export function badDeviceId(local: string): ParseResult {
  return reject('invalid_device_id', `device ${JSON.stringify(local.slice(0, 140))} (${local.length} chars)`);
}

/** Availability words used by the ecosystems: `online`/`offline` (z2m, HA), `Online`/`Offline` (Tasmota LWT), `true`/`false` (Shelly). */
const AVAILABILITY: Readonly<Record<string, boolean>> = { online: true, offline: false, true: true, false: false };

export function availabilityWord(word: string): boolean | undefined {
  return AVAILABILITY[word.trim().toLowerCase()];
}

/** Parses a plain-text availability payload into an availability update. */
export function availabilityUpdate(deviceId: string, payload: Buffer): ParseResult {
  const text = payloadText(payload, 64);
  if (!text.ok) return text;
  const available = availabilityWord(text.value);
  if (available === undefined) return reject('invalid_availability', `expected online/offline or true/false, got ${JSON.stringify(text.value.slice(0, 64))}`);
  return { ok: true, updates: [{ kind: 'availability', deviceId, available }] };
}

const NUMBER_RE = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

/** A plain-text value: numbers and booleans are parsed, anything else stays a (trimmed) string. */
export function plainValue(text: string): string | number | boolean {
  const t = text.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (NUMBER_RE.test(t)) {
    const n = Number(t);
    if (Number.isFinite(n)) return n;
  }
  return t;
}

/** `available` is reported by the device, never commanded; the other attributes are what a command may carry. */
export function commandable(attributes: Readonly<Record<string, unknown>>): Array<[string, unknown]> {
  return Object.entries(attributes).filter(([name]) => name !== 'available');
}

/** A command payload for a single value: strings as they are, booleans through `on`/`off` words, the rest as JSON. */
export function scalarPayload(value: unknown, on = 'ON', off = 'OFF'): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? on : off;
  return JSON.stringify(value) ?? 'null';
}

export function message(topic: string, payload: string | Buffer, qos: 0 | 1 = 1): OutgoingMessage {
  return { topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos, retain: false };
}

/** A state result, or nothing to write when every attribute was filtered out. */
export function stateResult(deviceId: string, attributes: Record<string, unknown>): ParseResult {
  return { ok: true, updates: Object.keys(attributes).length === 0 ? [] : [{ kind: 'state', deviceId, attributes }] };
}

/** Option checks at construction (house rule: message says expected vs given). */
export function checkTopicLevel(adapter: string, option: string, value: string): void {
  if (value.length === 0 || /[+#/]/.test(value)) {
    throw new RangeError(`${adapter} adapter: ${option} must be one topic level without + # /, given ${JSON.stringify(value)}`);
  }
}

export function checkMaxBytes(adapter: string, value: number): void {
  if (!Number.isInteger(value) || value < 2) throw new RangeError(`${adapter} adapter: maxPayloadBytes must be an integer >= 2, given ${String(value)}`);
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

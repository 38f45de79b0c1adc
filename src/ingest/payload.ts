/**
 * Payload validation at the boundary (common rules: every MQTT payload goes through a zod schema): size cap, UTF-8,
 * JSON, object, schema — each failure with its own stable reason.
 */
import { isUtf8 } from 'node:buffer';
import type { z } from 'zod';
import type { RejectReason } from './adapter.js';

export type PayloadResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: RejectReason; readonly detail: string };

export function reject(reason: RejectReason, detail: string): { ok: false; reason: RejectReason; detail: string } {
  return { ok: false, reason, detail };
}

/** Decodes a payload as UTF-8 text within `maxBytes`. */
export function payloadText(payload: Buffer, maxBytes: number): PayloadResult<string> {
  if (payload.length > maxBytes) return reject('payload_too_large', `${payload.length} bytes, at most ${maxBytes}`);
  if (!isUtf8(payload)) return reject('binary_payload', `${payload.length} bytes that are not UTF-8`);
  return { ok: true, value: payload.toString('utf8') };
}

/** Decodes a JSON payload of any shape within `maxBytes` (zigbee2mqtt's bridge/devices is an array). */
export function parseJsonValue(payload: Buffer, maxBytes: number): PayloadResult<unknown> {
  const text = payloadText(payload, maxBytes);
  if (!text.ok) return text;
  try {
    return { ok: true, value: JSON.parse(text.value) as unknown };
  } catch (err) {
    return reject('invalid_json', err instanceof Error ? err.message : 'not JSON');
  }
}

/** Checks a decoded value against `schema`, the first issues in the detail. */
export function checkSchema<T>(json: unknown, schema: z.ZodType<T>): PayloadResult<T> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    return reject('invalid_schema', issues.join('; '));
  }
  return { ok: true, value: parsed.data };
}

/** Parses a JSON object payload and checks it against `schema`. */
export function parseJsonObject<T>(payload: Buffer, maxBytes: number, schema: z.ZodType<T>): PayloadResult<T> {
  const decoded = parseJsonValue(payload, maxBytes);
  if (!decoded.ok) return decoded;
  const json = decoded.value;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return reject('not_an_object', `expected a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);
  }
  return checkSchema(json, schema);
}

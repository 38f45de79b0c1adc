/**
 * The project's own topic convention (documented in the README, §The native topic convention):
 *   <base>/<device_id>/state         JSON object of attributes (a device may report a subset)
 *   <base>/<device_id>/meta          retained JSON {name, type, room, manufacturer?, model?}
 *   <base>/<device_id>/availability  `online` | `offline` (a device's LWT); becomes the `available` attribute
 *   <base>/<device_id>/set           commands to the device (downlink; never ingested)
 */
import { z } from 'zod';
import type { DeviceCommand } from '../../store/types.js';
import type { IngestAdapter, OutgoingMessage, ParseResult } from '../adapter.js';
import { parseJsonObject, payloadText, reject } from '../payload.js';

export interface NativeAdapterOptions {
  /** First topic level; default `devices`. */
  readonly baseTopic?: string;
  /** Payloads larger than this are refused; default 256 KiB. */
  readonly maxPayloadBytes?: number;
}

const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

const AttributeName = z.string().min(1).max(128);
export const NativeStateSchema = z
  .record(AttributeName, z.unknown())
  .refine((o) => Object.keys(o).length <= 256, { message: 'at most 256 attributes' });

const Text = (max: number) => z.string().trim().min(1).max(max);
export const NativeMetaSchema = z.object({
  name: Text(200).optional(),
  type: Text(64).nullable().optional(),
  room: Text(200).nullable().optional(),
  manufacturer: Text(200).nullable().optional(),
  model: Text(200).nullable().optional(),
});

const AVAILABILITY: Readonly<Record<string, boolean>> = { online: true, offline: false, true: true, false: false, '1': true, '0': false };

export function createNativeAdapter(options: NativeAdapterOptions = {}): IngestAdapter {
  const base = options.baseTopic ?? 'devices';
  const maxBytes = options.maxPayloadBytes ?? 256 * 1024;
  if (base.length === 0 || /[+#/]/.test(base)) {
    throw new RangeError(`native adapter: baseTopic must be one topic level without + # /, given ${JSON.stringify(base)}`);
  }
  if (!Number.isInteger(maxBytes) || maxBytes < 2) {
    throw new RangeError(`native adapter: maxPayloadBytes must be an integer >= 2, given ${String(options.maxPayloadBytes)}`);
  }
  const prefix = `${base}/`;

  function parse(topic: string, payload: Buffer): ParseResult | undefined {
    if (!topic.startsWith(prefix)) return undefined;
    const rest = topic.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return undefined;
    const deviceId = rest.slice(0, slash);
    const leaf = rest.slice(slash + 1);
    if (leaf !== 'state' && leaf !== 'meta' && leaf !== 'availability') return undefined; // e.g. /set: not ingested
    if (!DEVICE_ID_RE.test(deviceId)) return reject('invalid_device_id', `device id ${JSON.stringify(deviceId.slice(0, 140))}`);
    if (leaf === 'state') {
      const parsed = parseJsonObject(payload, maxBytes, NativeStateSchema);
      return parsed.ok ? { ok: true, updates: [{ kind: 'state', deviceId, attributes: parsed.value }] } : parsed;
    }
    if (leaf === 'meta') {
      const parsed = parseJsonObject(payload, maxBytes, NativeMetaSchema);
      if (!parsed.ok) return parsed;
      const m = parsed.value;
      return {
        ok: true,
        updates: [
          {
            kind: 'meta',
            deviceId,
            name: m.name ?? deviceId,
            type: m.type ?? null,
            room: m.room ?? null,
            ...(m.manufacturer !== undefined ? { manufacturer: m.manufacturer } : {}),
            ...(m.model !== undefined ? { model: m.model } : {}),
          },
        ],
      };
    }
    const text = payloadText(payload, 64);
    if (!text.ok) return text;
    const available = AVAILABILITY[text.value.trim().toLowerCase()];
    if (available === undefined) return reject('invalid_availability', `expected online or offline, got ${JSON.stringify(text.value)}`);
    return { ok: true, updates: [{ kind: 'availability', deviceId, available }] };
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    if (!DEVICE_ID_RE.test(command.deviceId) || Object.keys(command.attributes).length === 0) return [];
    return [
      {
        topic: `${prefix}${command.deviceId}/set`,
        payload: Buffer.from(JSON.stringify(command.attributes)),
        qos: 1,
        retain: false,
      },
    ];
  }

  return {
    name: 'native',
    filters: [`${base}/+/state`, `${base}/+/meta`, `${base}/+/availability`],
    parse,
    commandsFor,
    ownsDevice: (deviceId) => DEVICE_ID_RE.test(deviceId),
  };
}

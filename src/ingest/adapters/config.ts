/**
 * The `ingest.adapters` section of the gateway config (docs/devices.md): one sub-section per adapter, each enabled by
 * default and each with its tuning. Validated with the rest of the config (config/gateway-config.ts).
 */
import { z } from 'zod';

const Level = z.string().min(1).max(128).regex(/^[^+#/]+$/, 'one topic level without + # /');
const Names = z.array(z.string().min(1).max(128)).max(256);
/** Room names by device (the part of the device id after the adapter's prefix). */
const Rooms = z.record(z.string().min(1).max(256), z.string().min(1).max(128)).refine((r) => Object.keys(r).length <= 10_000, { message: 'at most 10000 devices' });

/**
 * Attributes each adapter drops by default (docs/devices.md §Ignored attributes): they change on every report without
 * meaning anything, so they would cause a store write and a sync each time. Names or dotted paths into nested values.
 */
export const DEFAULT_IGNORED_ATTRIBUTES = {
  zigbee2mqtt: ['linkquality', 'last_seen'],
  tasmota: ['Time', 'Uptime', 'UptimeSec', 'Heap', 'SleepMode', 'Sleep', 'LoadAvg', 'MqttCount', 'Wifi', 'Berry', 'TempUnit'],
  /** Within each component's status (`switch:0`, `pm1:0`, …): the per-minute energy buckets and their timestamp. */
  shelly: ['aenergy.by_minute', 'aenergy.minute_ts', 'ret_aenergy.by_minute', 'ret_aenergy.minute_ts'],
  homeassistant: [] as string[],
  generic: [] as string[],
} as const;

export const GenericMappingSchema = z.strictObject({
  pattern: z.string().min(1).max(512),
  payload: z.enum(['auto', 'json', 'plain']).default('auto'),
  idPrefix: z.string().max(64).default('generic:'),
  valueAttribute: z.string().min(1).max(128).default('value'),
  commandTopic: z.string().min(1).max(512).optional(),
});

export const AdaptersConfigSchema = z.strictObject({
  zigbee2mqtt: z
    .strictObject({
      enabled: z.boolean().default(true),
      baseTopic: Level.default('zigbee2mqtt'),
      ignoreAttributes: Names.default([...DEFAULT_IGNORED_ATTRIBUTES.zigbee2mqtt]),
      rooms: Rooms.default({}),
    })
    .prefault({}),
  tasmota: z
    .strictObject({
      enabled: z.boolean().default(true),
      prefixes: z.strictObject({ cmnd: Level.default('cmnd'), stat: Level.default('stat'), tele: Level.default('tele') }).prefault({}),
      discoveryTopic: z.string().min(1).max(256).regex(/^[^+#]+$/, 'a topic without + #').default('tasmota/discovery'),
      ignoreAttributes: Names.default([...DEFAULT_IGNORED_ATTRIBUTES.tasmota]),
      commandAttributes: Names.optional(),
      rooms: Rooms.default({}),
    })
    .prefault({}),
  shelly: z
    .strictObject({
      enabled: z.boolean().default(true),
      prefixFilters: z.array(z.string().min(1).max(256).regex(/^[^#]+$/, 'a filter without #')).min(1).max(64).default(['+']),
      gen1Topic: Level.nullable().default('shellies'),
      rpcSource: Level.default('inbetweenies'),
      ignoreAttributes: Names.default([...DEFAULT_IGNORED_ATTRIBUTES.shelly]),
      /** Ask each Gen2 device for its name and model (Shelly.GetDeviceInfo) when first heard. */
      askDeviceInfo: z.boolean().default(true),
      rooms: Rooms.default({}),
    })
    .prefault({}),
  homeassistant: z
    .strictObject({
      enabled: z.boolean().default(true),
      discoveryPrefix: Level.default('homeassistant'),
      maxEntities: z.number().int().min(1).max(100_000).default(5000),
      ignoreAttributes: Names.default([...DEFAULT_IGNORED_ATTRIBUTES.homeassistant]),
    })
    .prefault({}),
  generic: z
    .strictObject({
      enabled: z.boolean().default(true),
      mappings: z.array(GenericMappingSchema).max(256).default([]),
      ignoreAttributes: Names.default([...DEFAULT_IGNORED_ATTRIBUTES.generic]),
    })
    .prefault({}),
});

export type AdaptersConfig = z.infer<typeof AdaptersConfigSchema>;

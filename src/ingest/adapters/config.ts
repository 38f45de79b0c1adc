/**
 * The `ingest.adapters` section of the gateway config (issue 4 item 1): one sub-section per adapter, each enabled by
 * default and each with its tuning. Validated with the rest of the config (config/gateway-config.ts).
 */
import { z } from 'zod';

const Level = z.string().min(1).max(128).regex(/^[^+#/]+$/, 'one topic level without + # /');
const Names = z.array(z.string().min(1).max(128)).max(256);

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
      ignoreAttributes: Names.default(['linkquality', 'last_seen']),
    })
    .prefault({}),
  tasmota: z
    .strictObject({
      enabled: z.boolean().default(true),
      prefixes: z.strictObject({ cmnd: Level.default('cmnd'), stat: Level.default('stat'), tele: Level.default('tele') }).prefault({}),
      discoveryTopic: z.string().min(1).max(256).regex(/^[^+#]+$/, 'a topic without + #').default('tasmota/discovery'),
      ignoreAttributes: Names.optional(),
      commandAttributes: Names.optional(),
    })
    .prefault({}),
  shelly: z
    .strictObject({
      enabled: z.boolean().default(true),
      prefixFilters: z.array(z.string().min(1).max(256).regex(/^[^#]+$/, 'a filter without #')).min(1).max(64).default(['+']),
      gen1Topic: Level.nullable().default('shellies'),
      rpcSource: Level.default('inbetweenies'),
    })
    .prefault({}),
  homeassistant: z
    .strictObject({
      enabled: z.boolean().default(true),
      discoveryPrefix: Level.default('homeassistant'),
      maxEntities: z.number().int().min(1).max(100_000).default(5000),
    })
    .prefault({}),
  generic: z
    .strictObject({
      enabled: z.boolean().default(true),
      mappings: z.array(GenericMappingSchema).max(256).default([]),
    })
    .prefault({}),
});

export type AdaptersConfig = z.infer<typeof AdaptersConfigSchema>;

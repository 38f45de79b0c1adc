/**
 * Home Assistant MQTT discovery configs (HA docs "MQTT discovery"): abbreviation expansion, `~` base topics, the
 * single-component form `<prefix>/<component>/[<node_id>/]<object_id>/config` and the device form
 * `<prefix>/device/<id>/config` whose `cmps` map holds the components (sharing the top-level options). Pure functions.
 */
import { z } from 'zod';
import { compileCommandTemplate, compileTemplate, type CompiledTemplate } from './ha-template.js';

/** The abbreviations discovery payloads use for the options this adapter reads (HA docs "MQTT discovery"). */
const ABBREVIATIONS: Readonly<Record<string, string>> = {
  avty: 'availability',
  avty_mode: 'availability_mode',
  avty_t: 'availability_topic',
  avty_tpl: 'availability_template',
  bri_cmd_t: 'brightness_command_topic',
  bri_stat_t: 'brightness_state_topic',
  bri_val_tpl: 'brightness_value_template',
  cmd_t: 'command_topic',
  cmd_tpl: 'command_template',
  cmps: 'components',
  dev: 'device',
  dev_cla: 'device_class',
  json_attr_t: 'json_attributes_topic',
  o: 'origin',
  obj_id: 'object_id',
  p: 'platform',
  pl_avail: 'payload_available',
  pl_not_avail: 'payload_not_available',
  pl_off: 'payload_off',
  pl_on: 'payload_on',
  stat_off: 'state_off',
  stat_on: 'state_on',
  stat_t: 'state_topic',
  stat_val_tpl: 'state_value_template',
  uniq_id: 'unique_id',
  unit_of_meas: 'unit_of_measurement',
  val_tpl: 'value_template',
  // device map
  ids: 'identifiers',
  mf: 'manufacturer',
  mdl: 'model',
  mdl_id: 'model_id',
  sa: 'suggested_area',
  sw: 'sw_version',
  hw: 'hw_version',
  cns: 'connections',
  // availability list entries
  t: 'topic',
  tpl: 'template',
};

/** Expands abbreviations in an object, its `device`/`origin`, its `availability` entries and its `components`. */
export function expandAbbreviations(raw: Readonly<Record<string, unknown>>, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const name = ABBREVIATIONS[key] ?? key;
    if (depth < 3 && (name === 'device' || name === 'origin') && isRecord(value)) out[name] = expandAbbreviations(value, depth + 1);
    else if (depth < 3 && name === 'availability' && Array.isArray(value)) out[name] = value.map((v) => (isRecord(v) ? expandAbbreviations(v, depth + 1) : v));
    else if (depth < 2 && name === 'components' && isRecord(value)) {
      out[name] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isRecord(v) ? expandAbbreviations(v, depth + 1) : v]));
    } else out[name] = value;
  }
  return out;
}

/** HA: a `*_topic` value that starts or ends with `~` has it replaced by the `~` option. */
export function expandBase(config: Record<string, unknown>, base: string | undefined): Record<string, unknown> {
  if (base === undefined) return config;
  const sub = (v: string) => (v.startsWith('~') ? base + v.slice(1) : v.endsWith('~') ? v.slice(0, -1) + base : v);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if ((key.endsWith('_topic') || key === 'topic') && typeof value === 'string') out[key] = sub(value);
    else if (key === 'availability' && Array.isArray(value)) out[key] = value.map((v) => (isRecord(v) ? expandBase(v, base) : v));
    else out[key] = value;
  }
  return out;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const Topic = z.string().min(1).max(512).refine((t) => !/[+#]/.test(t) && !t.startsWith('$'), { message: 'a concrete topic without + # $' });
const Str = z.string().max(512);
const Payload = z.union([z.string().max(256), z.number(), z.boolean()]).transform(String);
const Ids = z.union([z.string().min(1).max(200), z.array(z.string().min(1).max(200)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

export const DeviceSchema = z.looseObject({
  identifiers: Ids.optional(),
  name: Str.nullish(),
  manufacturer: Str.nullish(),
  model: Str.nullish(),
  suggested_area: Str.nullish(),
});

const AvailabilityEntry = z.looseObject({
  topic: Topic,
  payload_available: Payload.optional(),
  payload_not_available: Payload.optional(),
  value_template: Str.optional(),
});

export const EntitySchema = z.looseObject({
  platform: z.string().min(1).max(64).optional(),
  name: Str.nullish(),
  unique_id: z.string().min(1).max(200).optional(),
  object_id: z.string().min(1).max(200).optional(),
  state_topic: Topic.optional(),
  value_template: Str.optional(),
  command_topic: Topic.optional(),
  command_template: Str.optional(),
  payload_on: Payload.optional(),
  payload_off: Payload.optional(),
  state_on: Payload.optional(),
  state_off: Payload.optional(),
  availability_topic: Topic.optional(),
  availability: z.array(AvailabilityEntry).max(16).optional(),
  payload_available: Payload.optional(),
  payload_not_available: Payload.optional(),
  device_class: Str.nullish(),
  device: DeviceSchema.optional(),
});
export type EntityConfig = z.infer<typeof EntitySchema>;

/** One discovered entity, compiled for ingest and downlink. */
export interface HaEntity {
  /** Discovery topic it came from plus, for device discovery, the component key: the key removal works by. */
  readonly key: string;
  readonly deviceId: string;
  /** The attribute this entity's state is stored under. */
  readonly attribute: string;
  readonly platform: string;
  readonly stateTopic: string | undefined;
  /** undefined: no value_template (the payload is the value); null: a template this gateway cannot evaluate. */
  readonly template: CompiledTemplate | null | undefined;
  readonly commandTopic: string | undefined;
  /** undefined: no command_template; null: one this gateway cannot render. */
  readonly commandTemplate: ((value: string) => string) | null | undefined;
  readonly payloadOn: string;
  readonly payloadOff: string;
  readonly stateOn: string;
  readonly stateOff: string;
  readonly availability: ReadonlyArray<{ topic: string; on: string; off: string; template: CompiledTemplate | null | undefined }>;
  /** `named`: the config gave the device (or entity) a name, rather than the id standing in for one. */
  readonly device: { name: string; named: boolean; manufacturer: string | null; model: string | null; room: string | null; type: string | null };
}

const TYPE_BY_PLATFORM: Readonly<Record<string, string>> = { light: 'light', switch: 'switch', lock: 'lock', cover: 'cover', climate: 'climate', fan: 'fan' };
const TYPE_BY_CLASS: Readonly<Record<string, string>> = { smoke: 'smoke', moisture: 'water_leak', door: 'contact', window: 'contact', motion: 'motion' };

const compileOptional = (t: string | undefined): CompiledTemplate | null | undefined => (t === undefined ? undefined : (compileTemplate(t) ?? null));

/** Compiles a validated entity config; `fallbackId` names it when it has no unique_id or object_id. */
export function compileEntity(key: string, platform: string, fallbackId: string, config: EntityConfig, idPrefix: string): HaEntity {
  const identifiers = config.device?.identifiers;
  const objectId = config.object_id ?? fallbackId;
  const deviceLocal = identifiers?.[0] ?? config.unique_id ?? objectId;
  const onPayload = config.payload_on ?? 'ON';
  const offPayload = config.payload_off ?? 'OFF';
  const avail = config.availability ?? (config.availability_topic ? [{ topic: config.availability_topic }] : []);
  return {
    key,
    deviceId: `${idPrefix}${deviceLocal}`,
    attribute: identifiers ? objectId : 'state',
    platform,
    stateTopic: config.state_topic,
    template: compileOptional(config.value_template),
    commandTopic: config.command_topic,
    commandTemplate: config.command_template === undefined ? undefined : (compileCommandTemplate(config.command_template) ?? null),
    payloadOn: onPayload,
    payloadOff: offPayload,
    stateOn: config.state_on ?? onPayload,
    stateOff: config.state_off ?? offPayload,
    availability: avail.map((a) => ({
      topic: a.topic,
      on: 'payload_available' in a && a.payload_available !== undefined ? a.payload_available : (config.payload_available ?? 'online'),
      off: 'payload_not_available' in a && a.payload_not_available !== undefined ? a.payload_not_available : (config.payload_not_available ?? 'offline'),
      template: compileOptional('value_template' in a ? a.value_template : undefined),
    })),
    device: {
      name: config.device?.name ?? config.name ?? deviceLocal,
      named: typeof (config.device?.name ?? config.name) === 'string',
      manufacturer: config.device?.manufacturer ?? null,
      model: config.device?.model ?? null,
      room: config.device?.suggested_area ?? null,
      type: TYPE_BY_PLATFORM[platform] ?? TYPE_BY_CLASS[config.device_class ?? ''] ?? (platform === 'sensor' || platform === 'binary_sensor' ? 'sensor' : null),
    },
  };
}

/**
 * Home Assistant MQTT discovery (docs/devices.md; HA docs "MQTT discovery"). The gateway reads the discovery configs
 * devices publish for Home Assistant and then ingests the state topics they name:
 *   <prefix>/<component>/[<node_id>/]<object_id>/config  one entity (abbreviations and `~` expanded)
 *   <prefix>/device/<id>/config                          a device with its entities in `cmps`
 *   empty retained payload on a config topic             removes what that topic declared
 *   <prefix>/status `online`                             HA's birth message: every filter is subscribed again
 * The state and availability topics named by configs are this adapter's run-time filters (dynamicFilters), so an
 * external-broker client subscribes to them and the router routes them here. Configs live in memory only: retained
 * config messages rebuild them after a restart (a broker re-delivers them on subscription; devices re-send them on
 * the birth message).
 * Device ids: `ha:<first device identifier>` (entities without a device: `ha:<unique_id>`); each entity's state is
 * the attribute named by its object id (no device: `state`).
 */
import type { DeviceCommand } from '../../store/types.js';
import type { FiltersChangedEvent, IngestAdapter, LocalUpdate, OutgoingMessage, ParseResult } from '../adapter.js';
import { parseJsonObject, payloadText, reject } from '../payload.js';
import { checkMaxBytes, checkTopicLevel, commandable, DEFAULT_MAX_PAYLOAD_BYTES, message, plainValue, scalarPayload } from './common.js';
import { compileEntity, EntitySchema, expandAbbreviations, expandBase, isRecord, type HaEntity } from './ha-discovery.js';
import { z } from 'zod';

export interface HomeAssistantAdapterOptions {
  /** HA's discovery prefix; default `homeassistant`. */
  readonly discoveryPrefix?: string;
  readonly maxPayloadBytes?: number;
  /** Entities remembered at most (memory bound); default 5000. */
  readonly maxEntities?: number;
  /**
   * Whether another adapter already ingests a state topic (e.g. zigbee2mqtt's, when zigbee2mqtt also publishes HA
   * discovery): such entities are not ingested twice under an `ha:` id. Default: none is.
   */
  readonly claimedElsewhere?: (topic: string) => boolean;
  /**
   * Node ids whose discovery configs are not read: the gateway's own (it announces itself to Home Assistant on the
   * same prefix, docs/devices.md §The gateway on MQTT) must not come back as a device. Default: none.
   */
  readonly ignoreNodeIds?: readonly string[];
}

export const HA_ID_PREFIX = 'ha:';
const BOOLEAN_PLATFORMS = new Set(['switch', 'light', 'binary_sensor', 'fan', 'siren']);
const IGNORED_PLATFORMS = new Set(['device_automation', 'tag']);
const ConfigObject = z.record(z.string(), z.unknown());

export function createHomeAssistantAdapter(options: HomeAssistantAdapterOptions = {}): IngestAdapter {
  const prefix = options.discoveryPrefix ?? 'homeassistant';
  checkTopicLevel('homeassistant', 'discoveryPrefix', prefix);
  const maxBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  checkMaxBytes('homeassistant', maxBytes);
  const maxEntities = options.maxEntities ?? 5000;
  if (!Number.isInteger(maxEntities) || maxEntities < 1) throw new RangeError(`homeassistant adapter: maxEntities must be an integer >= 1, given ${String(options.maxEntities)}`);
  const claimed = options.claimedElsewhere ?? (() => false);
  const ignoredNodes = new Set(options.ignoreNodeIds ?? []);
  const registry = new Registry();
  const listeners = new Set<(event: FiltersChangedEvent) => void>();
  const notify = (resubscribe: boolean) => {
    for (const l of listeners) l({ adapter: 'homeassistant', resubscribe });
  };

  function parseConfig(topic: string, levels: readonly string[], payload: Buffer): ParseResult {
    if (payload.length === 0) {
      if (registry.remove(topic)) notify(false);
      return { ok: true, updates: [] };
    }
    // Home Assistant's discovery topic levels are `[a-zA-Z0-9_-]+` (its MQTT discovery docs): an empty or odd level
    // would make an empty or colliding device id.
    const bad = levels.slice(1, -1).find((level) => !/^[A-Za-z0-9_-]+$/.test(level));
    if (bad !== undefined) return reject('invalid_topic', `discovery topic level ${JSON.stringify(bad.slice(0, 64))}: expected [a-zA-Z0-9_-]+`);
    const parsed = parseJsonObject(payload, maxBytes, ConfigObject);
    if (!parsed.ok) return parsed;
    const config = expandAbbreviations(parsed.value);
    const base = typeof config['~'] === 'string' ? config['~'] : undefined;
    const component = levels[1] ?? '';
    const objectId = levels[levels.length - 2] ?? '';
    let entities: HaEntity[];
    if (component === 'device') {
      const compiled = compileDevice(topic, objectId, config, base);
      if (!compiled.ok) return compiled;
      entities = compiled.entities;
    } else {
      if (IGNORED_PLATFORMS.has(component)) return { ok: true, updates: [] };
      const entity = EntitySchema.safeParse(expandBase(config, base));
      if (!entity.success) return reject('invalid_schema', describe(entity.error.issues));
      entities = [compileEntity(topic, component, levels.length === 5 ? `${levels[2]}_${objectId}` : objectId, entity.data, HA_ID_PREFIX)];
    }
    if (entities.some((e) => e.deviceId.length <= HA_ID_PREFIX.length)) return reject('invalid_schema', 'device identifiers / unique_id: expected a non-empty id');
    entities = entities.filter((e) => e.stateTopic === undefined || !claimed(e.stateTopic));
    if (registry.size() - registry.countFor(topic) + entities.length > maxEntities) {
      return reject('invalid_schema', `more than ${maxEntities} discovered entities (maxEntities)`);
    }
    registry.replace(topic, entities);
    notify(false);
    // Entities of one device often repeat only its identifiers: meta merges what all of them say.
    return { ok: true, updates: [...new Set(entities.map((e) => e.deviceId))].map((id) => metaUpdate(id, registry.ofDevice(id))) };
  }

  function parse(topic: string, payload: Buffer): ParseResult | undefined {
    const levels = topic.split('/');
    if (levels[0] === prefix) {
      if (levels.length === 2 && levels[1] === 'status') {
        const text = payloadText(payload, 64);
        if (text.ok && text.value.trim() === 'online') notify(true); // HA's birth message: subscribe again
        return undefined;
      }
      if ((levels.length === 4 || levels.length === 5) && levels[levels.length - 1] === 'config') {
        // <prefix>/<component>/<node_id>/<object_id>/config and <prefix>/device/<id>/config: the node is level 2.
        const node = levels.length === 5 || levels[1] === 'device' ? levels[2] : undefined;
        if (node !== undefined && ignoredNodes.has(node)) return undefined;
        return parseConfig(topic, levels, payload);
      }
    }
    return parseState(topic, payload);
  }

  function parseState(topic: string, payload: Buffer): ParseResult | undefined {
    const states = registry.stateEntities(topic);
    const avail = registry.availabilityEntities(topic);
    if (states.length === 0 && avail.length === 0) return undefined;
    const text = payloadText(payload, maxBytes);
    if (!text.ok) return text;
    const input = { text: text.value, json: parseJson(text.value) };
    const attributes = new Map<string, Record<string, unknown>>();
    const updates: LocalUpdate[] = [];
    const failures: Array<{ reason: 'unsupported_template' | 'invalid_schema'; detail: string }> = [];
    for (const entity of states) {
      const value = entityValue(entity, input);
      if (!value.ok) failures.push(value);
      else attributes.set(entity.deviceId, { ...attributes.get(entity.deviceId), [entity.attribute]: value.value });
    }
    for (const { entity, index } of avail) {
      const a = entity.availability[index];
      if (!a) continue;
      const word = a.template === undefined ? { ok: true as const, value: text.value } : a.template === null ? undefined : a.template(input);
      if (word === undefined || !word.ok) failures.push({ reason: 'unsupported_template', detail: `availability template of ${entity.key}` });
      else if (String(word.value) === a.on || String(word.value) === a.off) updates.push({ kind: 'availability', deviceId: entity.deviceId, available: String(word.value) === a.on });
      else failures.push({ reason: 'invalid_schema', detail: `availability ${JSON.stringify(String(word.value).slice(0, 64))} is neither ${a.on} nor ${a.off}` });
    }
    for (const [deviceId, attrs] of attributes) updates.push({ kind: 'state', deviceId, attributes: attrs });
    const first = failures[0];
    if (updates.length === 0 && first) return reject(first.reason, first.detail);
    return { ok: true, updates: dedupeAvailability(updates) };
  }

  function commandsFor(command: DeviceCommand): readonly OutgoingMessage[] {
    const out: OutgoingMessage[] = [];
    for (const [attribute, value] of commandable(command.attributes)) {
      const entity = registry.commandEntity(command.deviceId, attribute);
      if (entity?.commandTopic === undefined) continue;
      const text = typeof value === 'object' && value !== null ? JSON.stringify(value) : scalarPayload(value, entity.payloadOn, entity.payloadOff);
      // A command_template beyond `… {{ value }} …` was not compiled (commandTemplate null): nothing is sent.
      if (entity.commandTemplate === null) continue;
      out.push(message(entity.commandTopic, entity.commandTemplate ? entity.commandTemplate(text) : text));
    }
    return out;
  }

  return {
    name: 'homeassistant',
    filters: [`${prefix}/#`],
    parse,
    commandsFor,
    ownsDevice: (deviceId) => deviceId.startsWith(HA_ID_PREFIX) && deviceId.length > HA_ID_PREFIX.length,
    dynamicFilters: () => registry.topics(),
    onFiltersChanged(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

function compileDevice(
  topic: string,
  deviceKey: string,
  config: Record<string, unknown>,
  base: string | undefined,
): { ok: true; entities: HaEntity[] } | ReturnType<typeof reject> {
  const { components, ...shared } = config;
  if (!isRecord(components) || Object.keys(components).length === 0) return reject('invalid_schema', 'components (cmps): expected a non-empty object');
  if (Object.keys(components).length > 256) return reject('invalid_schema', 'components (cmps): at most 256');
  const entities: HaEntity[] = [];
  for (const [key, raw] of Object.entries(components)) {
    if (!isRecord(raw)) return reject('invalid_schema', `components.${key}: expected an object`);
    const platform = raw.platform;
    if (typeof platform !== 'string' || platform.length === 0) return reject('invalid_schema', `components.${key}.platform (p): required`);
    if (IGNORED_PLATFORMS.has(platform)) continue;
    const entity = EntitySchema.safeParse(expandBase({ ...shared, ...raw }, typeof raw['~'] === 'string' ? raw['~'] : base));
    if (!entity.success) return reject('invalid_schema', `components.${key}: ${describe(entity.error.issues)}`);
    const withDevice = entity.data.device ? entity.data : { ...entity.data, device: { identifiers: [deviceKey] } };
    entities.push(compileEntity(`${topic}#${key}`, platform, key, withDevice, HA_ID_PREFIX));
  }
  return { ok: true, entities };
}

function entityValue(entity: HaEntity, input: { text: string; json: unknown }): { ok: true; value: unknown } | { ok: false; reason: 'unsupported_template' | 'invalid_schema'; detail: string } {
  if (entity.template === null) return { ok: false, reason: 'unsupported_template', detail: `value_template of ${entity.key}` };
  const result = entity.template === undefined ? { ok: true as const, value: isRecord(input.json) ? input.json : input.text } : entity.template(input);
  if (!result.ok) return { ok: false, reason: 'invalid_schema', detail: `${entity.key}: ${result.detail}` };
  const value = result.value;
  if (typeof value !== 'string') return { ok: true, value };
  if (BOOLEAN_PLATFORMS.has(entity.platform) && (value === entity.stateOn || value === entity.stateOff)) return { ok: true, value: value === entity.stateOn };
  return { ok: true, value: plainValue(value) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One device's meta from everything its entities say (first non-null of each field, in discovery order). */
function metaUpdate(deviceId: string, entities: readonly HaEntity[]): LocalUpdate {
  const first = <K extends keyof HaEntity['device']>(key: K): HaEntity['device'][K] | null => entities.find((e) => e.device[key] !== null)?.device[key] ?? null;
  const named = entities.find((e) => e.device.named);
  return {
    kind: 'meta',
    deviceId,
    name: (named ?? entities[0])?.device.name ?? deviceId,
    type: first('type'),
    room: first('room'),
    manufacturer: first('manufacturer'),
    model: first('model'),
  };
}

function dedupeAvailability(updates: LocalUpdate[]): LocalUpdate[] {
  const seen = new Set<string>();
  return updates.filter((u) => u.kind !== 'availability' || (!seen.has(u.deviceId) && seen.add(u.deviceId) !== undefined));
}

function describe(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Discovered entities by config topic, with indexes by state topic, availability topic and (device, attribute). */
class Registry {
  readonly #byConfig = new Map<string, HaEntity[]>();
  #stateIndex = new Map<string, HaEntity[]>();
  #availIndex = new Map<string, Array<{ entity: HaEntity; index: number }>>();
  #commandIndex = new Map<string, HaEntity>();
  #count = 0;

  size(): number {
    return this.#count;
  }

  countFor(topic: string): number {
    return this.#byConfig.get(topic)?.length ?? 0;
  }

  replace(topic: string, entities: HaEntity[]): void {
    if (entities.length === 0) this.#byConfig.delete(topic);
    else this.#byConfig.set(topic, entities);
    this.#reindex();
  }

  remove(topic: string): boolean {
    if (!this.#byConfig.delete(topic)) return false;
    this.#reindex();
    return true;
  }

  stateEntities(topic: string): readonly HaEntity[] {
    return this.#stateIndex.get(topic) ?? [];
  }

  availabilityEntities(topic: string): ReadonlyArray<{ entity: HaEntity; index: number }> {
    return this.#availIndex.get(topic) ?? [];
  }

  ofDevice(deviceId: string): HaEntity[] {
    return [...this.#byConfig.values()].flat().filter((e) => e.deviceId === deviceId);
  }

  commandEntity(deviceId: string, attribute: string): HaEntity | undefined {
    return this.#commandIndex.get(`${deviceId}\u0000${attribute}`);
  }

  topics(): string[] {
    return [...new Set([...this.#stateIndex.keys(), ...this.#availIndex.keys()])];
  }

  #reindex(): void {
    this.#stateIndex = new Map();
    this.#availIndex = new Map();
    this.#commandIndex = new Map();
    this.#count = 0;
    for (const entities of this.#byConfig.values()) {
      for (const entity of entities) {
        this.#count += 1;
        if (entity.stateTopic !== undefined) this.#stateIndex.set(entity.stateTopic, [...(this.#stateIndex.get(entity.stateTopic) ?? []), entity]);
        entity.availability.forEach((a, index) => this.#availIndex.set(a.topic, [...(this.#availIndex.get(a.topic) ?? []), { entity, index }]));
        if (entity.commandTopic !== undefined) this.#commandIndex.set(`${entity.deviceId}\u0000${entity.attribute}`, entity);
      }
    }
  }
}

/**
 * Builds the enabled ingest adapters from config (docs/devices.md). Order matters to the router: the ecosystem
 * adapters (their device ids carry a prefix) come before `native`, whose ownsDevice claims any plain id; Home
 * Assistant discovery comes after the adapters that may publish discovery for their own devices, and skips the
 * state topics they already ingest.
 */
import { topicMatches, type IngestAdapter } from '../adapter.js';
import type { AdaptersConfig } from './config.js';
import { createGenericAdapter } from './generic.js';
import { createHomeAssistantAdapter } from './homeassistant.js';
import { createNativeAdapter } from './native.js';
import { createShellyAdapter } from './shelly.js';
import { createTasmotaAdapter } from './tasmota.js';
import { createZigbee2MqttAdapter } from './zigbee2mqtt.js';
import { ignoreList, withIgnoreList } from './ignore.js';

export interface AdapterSetOptions {
  readonly adapters: AdaptersConfig;
  readonly native: { readonly enabled: boolean; readonly baseTopic: string };
  readonly maxPayloadBytes: number;
  /** Home Assistant discovery node ids not to ingest (the gateway's own, when it announces itself). */
  readonly ignoreHomeAssistantNodeIds?: readonly string[];
}

export function createAdapters(options: AdapterSetOptions): IngestAdapter[] {
  const { adapters: c, maxPayloadBytes } = options;
  const out: IngestAdapter[] = [];
  if (c.zigbee2mqtt.enabled) {
    out.push(createZigbee2MqttAdapter({ baseTopic: c.zigbee2mqtt.baseTopic, ignoreAttributes: c.zigbee2mqtt.ignoreAttributes, rooms: c.zigbee2mqtt.rooms, maxPayloadBytes }));
  }
  if (c.tasmota.enabled) {
    out.push(
      createTasmotaAdapter({
        prefixes: c.tasmota.prefixes,
        discoveryTopic: c.tasmota.discoveryTopic,
        maxPayloadBytes,
        ignoreAttributes: c.tasmota.ignoreAttributes,
        rooms: c.tasmota.rooms,
        ...(c.tasmota.commandAttributes ? { commandAttributes: c.tasmota.commandAttributes } : {}),
      }),
    );
  }
  if (c.shelly.enabled) {
    const { prefixFilters, gen1Topic, rpcSource, ignoreAttributes, askDeviceInfo, rooms } = c.shelly;
    out.push(createShellyAdapter({ prefixFilters, gen1Topic, rpcSource, ignoreAttributes, askDeviceInfo, rooms, maxPayloadBytes }));
  }
  const native = options.native.enabled ? createNativeAdapter({ baseTopic: options.native.baseTopic, maxPayloadBytes }) : undefined;
  const generic =
    c.generic.enabled && c.generic.mappings.length > 0 ? withIgnoreList(createGenericAdapter({ mappings: c.generic.mappings, maxPayloadBytes }), ignoreList(c.generic.ignoreAttributes)) : undefined;
  if (c.homeassistant.enabled) {
    const others = [...out, ...(generic ? [generic] : []), ...(native ? [native] : [])];
    const claimedElsewhere = (topic: string) => others.some((a) => a.filters.some((f) => topicMatches(f, topic)));
    const ha = createHomeAssistantAdapter({
      discoveryPrefix: c.homeassistant.discoveryPrefix,
      maxEntities: c.homeassistant.maxEntities,
      maxPayloadBytes,
      claimedElsewhere,
      ...(options.ignoreHomeAssistantNodeIds ? { ignoreNodeIds: options.ignoreHomeAssistantNodeIds } : {}),
    });
    out.push(withIgnoreList(ha, ignoreList(c.homeassistant.ignoreAttributes)));
  }
  if (generic) out.push(generic);
  if (native) out.push(native);
  return out;
}

export { AdaptersConfigSchema, GenericMappingSchema, type AdaptersConfig } from './config.js';
export { createGenericAdapter, type GenericAdapterOptions, type GenericMapping } from './generic.js';
export { createHomeAssistantAdapter, HA_ID_PREFIX, type HomeAssistantAdapterOptions } from './homeassistant.js';
export { createShellyAdapter, SHELLY_ID_PREFIX, type ShellyAdapterOptions } from './shelly.js';
export { createTasmotaAdapter, TASMOTA_ID_PREFIX, type TasmotaAdapterOptions } from './tasmota.js';
export { createZigbee2MqttAdapter, Z2M_ID_PREFIX, type Zigbee2MqttAdapterOptions } from './zigbee2mqtt.js';

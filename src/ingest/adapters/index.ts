/**
 * Builds the enabled ingest adapters from config (issue 4 item 1). Order matters to the router: the ecosystem
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

export interface AdapterSetOptions {
  readonly adapters: AdaptersConfig;
  readonly native: { readonly enabled: boolean; readonly baseTopic: string };
  readonly maxPayloadBytes: number;
}

export function createAdapters(options: AdapterSetOptions): IngestAdapter[] {
  const { adapters: c, maxPayloadBytes } = options;
  const out: IngestAdapter[] = [];
  if (c.zigbee2mqtt.enabled) out.push(createZigbee2MqttAdapter({ baseTopic: c.zigbee2mqtt.baseTopic, ignoreAttributes: c.zigbee2mqtt.ignoreAttributes, maxPayloadBytes }));
  if (c.tasmota.enabled) {
    out.push(
      createTasmotaAdapter({
        prefixes: c.tasmota.prefixes,
        discoveryTopic: c.tasmota.discoveryTopic,
        maxPayloadBytes,
        ...(c.tasmota.ignoreAttributes ? { ignoreAttributes: c.tasmota.ignoreAttributes } : {}),
        ...(c.tasmota.commandAttributes ? { commandAttributes: c.tasmota.commandAttributes } : {}),
      }),
    );
  }
  if (c.shelly.enabled) out.push(createShellyAdapter({ prefixFilters: c.shelly.prefixFilters, gen1Topic: c.shelly.gen1Topic, rpcSource: c.shelly.rpcSource, maxPayloadBytes }));
  const native = options.native.enabled ? createNativeAdapter({ baseTopic: options.native.baseTopic, maxPayloadBytes }) : undefined;
  const generic = c.generic.enabled && c.generic.mappings.length > 0 ? createGenericAdapter({ mappings: c.generic.mappings, maxPayloadBytes }) : undefined;
  if (c.homeassistant.enabled) {
    const others = [...out, ...(generic ? [generic] : []), ...(native ? [native] : [])];
    const claimedElsewhere = (topic: string) => others.some((a) => a.filters.some((f) => topicMatches(f, topic)));
    out.push(createHomeAssistantAdapter({ discoveryPrefix: c.homeassistant.discoveryPrefix, maxEntities: c.homeassistant.maxEntities, maxPayloadBytes, claimedElsewhere }));
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

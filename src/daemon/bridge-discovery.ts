/**
 * The gateway's own topics on MQTT (docs/devices.md §The gateway on MQTT), the way zigbee2mqtt shows its bridge:
 *
 *   <base>/bridge/state   `online` / `offline`, retained (a last will says `offline` when the connection dies)
 *   <base>/bridge/info    the values below as one retained JSON object, republished when they change
 *
 * and Home Assistant MQTT discovery (HA docs "MQTT discovery") for them: five sensors and one connectivity binary
 * sensor on one HA device, each `<prefix>/<component>/<node id>/<object id>/config`, retained. Pure functions.
 */
import { syncLabel, type SyncLabel } from './page-data.js';
import type { DaemonStatus } from './status.js';

export interface BridgeTopics {
  readonly state: string;
  readonly info: string;
  /** The `<node_id>` level of the discovery topics and the HA device identifier: `<base>_gateway`. */
  readonly nodeId: string;
}

export function bridgeTopics(baseTopic: string): BridgeTopics {
  return { state: `${baseTopic}/bridge/state`, info: `${baseTopic}/bridge/info`, nodeId: `${baseTopic}_gateway` };
}

/** The retained values on `<base>/bridge/info` (a wire type: snake_case). */
export interface BridgeInfo {
  readonly version: string;
  readonly sync_mode: SyncLabel;
  readonly pending_changes: number;
  /** ISO 8601 with time zone, or null before the first successful sync (HA shows "unknown"). */
  readonly last_sync: string | null;
  readonly devices: number;
  readonly conflicts: number;
  readonly broker_clients: number;
}

/** The info values from the daemon's status. */
export function bridgeInfo(st: DaemonStatus & { readonly devices: number }, version: string): BridgeInfo {
  const last = st.scheduler?.lastSuccessAt ?? st.lastSyncAt;
  return {
    version,
    sync_mode: syncLabel(st.scheduler).label,
    pending_changes: st.pending,
    last_sync: last === null ? null : new Date(last).toISOString(),
    devices: st.devices,
    conflicts: st.conflicts,
    broker_clients: st.brokerClients,
  };
}

export interface DiscoveryMessage {
  readonly topic: string;
  /** The config object; an empty retained payload removes the entity (when discovery is turned off). */
  readonly config: Record<string, unknown>;
}

interface EntitySpec {
  readonly component: 'sensor' | 'binary_sensor';
  readonly objectId: string;
  readonly options: Record<string, unknown>;
}

const SENSORS: readonly EntitySpec[] = [
  { component: 'sensor', objectId: 'sync_mode', options: { name: 'Sync mode', icon: 'mdi:sync', device_class: 'enum', options: ['live', 'polling', 'offline'], value_template: '{{ value_json.sync_mode }}' } },
  { component: 'sensor', objectId: 'pending_changes', options: { name: 'Pending changes', icon: 'mdi:upload', state_class: 'measurement', value_template: '{{ value_json.pending_changes }}' } },
  { component: 'sensor', objectId: 'last_sync', options: { name: 'Last successful sync', device_class: 'timestamp', value_template: '{{ value_json.last_sync }}' } },
  { component: 'sensor', objectId: 'devices', options: { name: 'Devices', icon: 'mdi:devices', state_class: 'measurement', value_template: '{{ value_json.devices }}' } },
  { component: 'sensor', objectId: 'conflicts', options: { name: 'Conflicts', icon: 'mdi:source-branch', state_class: 'measurement', entity_category: 'diagnostic', value_template: '{{ value_json.conflicts }}' } },
];

/** Every discovery topic of the gateway (also what is cleared when discovery is off). */
export function discoveryMessages(options: { prefix: string; baseTopic: string; version: string }): DiscoveryMessage[] {
  const t = bridgeTopics(options.baseTopic);
  const device = { identifiers: [t.nodeId], name: 'Inbetweenies gateway', manufacturer: 'Inbetweenies', model: 'inbetweenies-gateway', sw_version: options.version };
  const origin = { name: 'inbetweenies-gateway', sw_version: options.version };
  const topic = (e: EntitySpec): string => `${options.prefix}/${e.component}/${t.nodeId}/${e.objectId}/config`;
  const sensors = SENSORS.map((e) => ({
    topic: topic(e),
    config: { ...e.options, unique_id: `${t.nodeId}_${e.objectId}`, state_topic: t.info, availability_topic: t.state, device, origin },
  }));
  // The connection sensor must read "disconnected" when the gateway is gone, so it is never "unavailable".
  const connection: EntitySpec = { component: 'binary_sensor', objectId: 'connection', options: {} };
  return [
    ...sensors,
    {
      topic: topic(connection),
      config: { name: 'Connection', device_class: 'connectivity', entity_category: 'diagnostic', unique_id: `${t.nodeId}_connection`, state_topic: t.state, payload_on: 'online', payload_off: 'offline', device, origin },
    },
  ];
}

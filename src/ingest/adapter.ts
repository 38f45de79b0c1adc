/**
 * The ingest adapter interface (native, zigbee2mqtt, Tasmota, Shelly, Home Assistant, generic; docs/devices.md): an
 * adapter owns some topic filters, turns a (topic, payload) into typed updates or a typed rejection, and maps a
 * DeviceCommand to the PUBLISHes its devices understand (downlink).
 */
import type { LocalUpdate } from './local-writes.js';
import type { DeviceCommand } from '../store/types.js';

export type { LocalUpdate };

/** Stable reasons a payload on an owned topic is refused; metrics and logs are keyed by them. */
export type RejectReason =
  | 'payload_too_large'
  | 'binary_payload'
  | 'invalid_json'
  | 'not_an_object'
  | 'invalid_schema'
  | 'invalid_device_id'
  | 'invalid_availability'
  /** A topic in an adapter's own namespace whose shape is wrong (e.g. a bad Shelly component key). */
  | 'invalid_topic'
  /** A Home Assistant value template this gateway cannot evaluate (only `{{ value }}` / `{{ value_json.x }}` forms). */
  | 'unsupported_template';

export type ParseResult =
  | {
      readonly ok: true;
      readonly updates: readonly LocalUpdate[];
      /** Messages the adapter publishes in answer (e.g. asking a Shelly for its name); sent after the message is handled. */
      readonly publish?: readonly OutgoingMessage[];
    }
  | { readonly ok: false; readonly reason: RejectReason; readonly detail: string };

export interface OutgoingMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

export interface IngestAdapter {
  /** Unique name, used in metrics and to remember which adapter a device speaks. */
  readonly name: string;
  /** MQTT topic filters (`+`, `#`) whose messages this adapter parses. */
  readonly filters: readonly string[];
  /**
   * Parses one message on an owned filter. Returns `undefined` when the topic, on closer look, is not one the
   * adapter ingests (e.g. a command topic under the same prefix): that is not an error.
   */
  parse(topic: string, payload: Buffer): ParseResult | undefined;
  /** The messages that carry `command` to the device. */
  commandsFor(command: DeviceCommand): readonly OutgoingMessage[];
  /** Whether a device id is one of this adapter's (used before the device has been heard from); optional. */
  ownsDevice?(deviceId: string): boolean;
  /**
   * Filters learnt at run time (e.g. the state and availability topics Home Assistant discovery configs name).
   * The router offers a topic that no static filter took to the adapters whose dynamic filters match it; an
   * external-broker client subscribes to them as well as to `filters`. Optional.
   */
  dynamicFilters?(): readonly string[];
  /**
   * Calls `listener` when dynamicFilters() changed (`resubscribe: false`), or when every filter should be subscribed
   * again so the broker re-delivers retained messages (`resubscribe: true`, e.g. on Home Assistant's birth message).
   * Returns the unsubscribe function. Optional; required when dynamicFilters is given.
   */
  onFiltersChanged?(listener: (event: FiltersChangedEvent) => void): () => void;
}

export interface FiltersChangedEvent {
  readonly adapter: string;
  readonly resubscribe: boolean;
}

/** MQTT topic filter match (MQTT 3.1.1 §4.7): `+` one level, `#` the rest (including the parent level). */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && !filter.startsWith('$')) return false;
  return levelsMatch(filter.split('/'), topic.split('/'));
}

/** topicMatches on topics already split into levels (the router splits each topic once). */
export function levelsMatch(filter: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < filter.length; i += 1) {
    const level = filter[i];
    if (level === '#') return true;
    if (i >= topic.length) return false;
    if (level !== '+' && level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

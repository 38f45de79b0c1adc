/**
 * The gateway visible on MQTT and in Home Assistant (bridge-discovery.ts has the topics). A component of the daemon,
 * started right after the MQTT bus and stopped right before it:
 *
 * - start: `online` on the state topic (retained), the discovery configs (or, with discovery off, empty retained
 *   configs that remove earlier ones), the info values; then the values again whenever they change, at most every
 *   `updateMs`, nudged by the daemon's events and looked at every `updateMs` anyway (a mode change no event says);
 * - a clean stop: `offline` (retained) while the connection is still up;
 * - a dying connection: external mode, the broker publishes the connection's last will `offline` (the daemon gives
 *   createMqttBus `bridgeWill()`), and the external source republishes `online` on every reconnect (its birth
 *   message). Embedded mode: the broker dies with the daemon, its clients lose their connection, and the retained
 *   store (in memory) starts empty: what a restarted daemon publishes first is `online`.
 * - `offline` read on the state topic while running (another client, or the will of this gateway's own earlier
 *   connection that a broker publishes late, after a takeover of the session) is answered with `online` at once;
 *   Home Assistant's birth message (`<prefix>/status` `online`) gets the discovery configs again.
 */
import type { BusMessage, MessageBus } from '../broker/broker.js';
import type { Logger } from '../log.js';
import { bridgeTopics, discoveryMessages, type BridgeInfo, type BridgeTopics } from './bridge-discovery.js';
import type { EventHub } from './events.js';
import type { Component } from './lifecycle.js';

/** How long after an `offline` written over the state the bridge says `online` again (the broker finishes first). */
const HEAL_DELAY_MS = 200;

export interface BridgeSettings {
  readonly baseTopic: string;
  /** `enabled: false`: no Home Assistant discovery (configs published earlier under the prefix are removed). */
  readonly homeassistant: { readonly enabled: boolean; readonly discoveryPrefix: string };
  /** Values are republished when they change, at most this often. */
  readonly updateMs: number;
}

export interface BridgeOptions {
  readonly bus: MessageBus;
  /** Whether the bus is connected now (a stop publishes `offline` only then). */
  readonly connected: () => boolean;
  readonly settings: BridgeSettings;
  readonly version: string;
  readonly info: () => BridgeInfo;
  readonly hub: EventHub;
  readonly logger: Logger;
  /** How long a stop waits for `offline` to be acknowledged; default 2 s. */
  readonly stopTimeoutMs?: number;
}

/** The last will of the external broker connection: `offline`, retained. */
export function bridgeWill(baseTopic: string): BusMessage {
  return message(bridgeTopics(baseTopic).state, 'offline');
}

/** What the external connection publishes on every CONNACK (before anything else): `online`, retained. */
export function bridgeBirth(baseTopic: string): BusMessage {
  return message(bridgeTopics(baseTopic).state, 'online');
}

export class Bridge implements Component {
  readonly name = 'bridge';
  readonly #o: BridgeOptions;
  readonly #log: Logger;
  readonly #topics: BridgeTopics;
  /** Home Assistant's birth topic, or null without discovery. */
  readonly #birthTopic: string | null;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Timeout | undefined;
  #lastInfo = '';
  #lastPublishAt = -Infinity;
  #heal: NodeJS.Timeout | undefined;
  #detach: Array<() => void> = [];
  #running = false;

  constructor(options: BridgeOptions) {
    if (!(options.settings.updateMs >= 100)) throw new TypeError(`bridge: expected updateMs >= 100, got ${String(options.settings.updateMs)}`);
    this.#o = options;
    this.#log = options.logger.child({ module: 'bridge' });
    this.#topics = bridgeTopics(options.settings.baseTopic);
    const ha = options.settings.homeassistant;
    this.#birthTopic = ha.enabled ? `${ha.discoveryPrefix}/status` : null;
  }

  get topics(): BridgeTopics {
    return this.#topics;
  }

  start(): void {
    this.#running = true;
    this.#send(message(this.#topics.state, 'online'));
    this.#sendDiscovery();
    this.#publishInfo(true);
    this.#detach.push(this.#o.bus.addPublishInterceptor((_client, packet, done) => {
      done(null);
      this.#heard(packet.topic, packet.payload);
    }));
    this.#detach.push(this.#o.hub.on(() => this.#nudge()));
    this.#timer = setInterval(() => this.#publishInfo(false), this.#o.settings.updateMs);
    this.#timer.unref();
    const ha = this.#o.settings.homeassistant;
    this.#log.info({ state: this.#topics.state, discovery: ha.enabled ? ha.discoveryPrefix : false }, 'bridge online');
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearInterval(this.#timer);
    clearTimeout(this.#soon);
    clearTimeout(this.#heal);
    for (const detach of this.#detach.splice(0)) detach();
    if (!this.#o.connected()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#o.bus.publish(message(this.#topics.state, 'offline')).catch((err: unknown) => this.#log.warn({ err }, 'could not publish the bridge state offline')),
      new Promise((resolve) => (timer = setTimeout(resolve, this.#o.stopTimeoutMs ?? 2000))),
    ]);
    clearTimeout(timer);
  }

  /** Every PUBLISH the bus sees passes here: only two topics are looked at, the rest costs a comparison. */
  #heard(topic: string, payload: Buffer | string): void {
    const birth = topic === this.#birthTopic;
    if (!this.#running || (topic !== this.#topics.state && !birth)) return;
    const text = payload.toString().trim();
    if (topic === this.#topics.state && text !== 'online') {
      // After the broker has stored and delivered the message it is handling now; one answer per HEAL_DELAY_MS.
      this.#heal ??= setTimeout(() => {
        this.#heal = undefined;
        if (!this.#running) return;
        this.#log.warn({ topic, payload: text.slice(0, 32) }, 'bridge state overwritten while running; publishing online again');
        this.#send(message(this.#topics.state, 'online'));
      }, HEAL_DELAY_MS);
      return;
    }
    if (birth && text === 'online') {
      this.#sendDiscovery();
      this.#publishInfo(true);
    }
  }

  /** Something changed: publish soon, but not more often than every updateMs. */
  #nudge(): void {
    if (this.#soon !== undefined || !this.#running) return;
    const wait = Math.max(0, this.#lastPublishAt + this.#o.settings.updateMs - Date.now());
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      this.#publishInfo(false);
    }, wait);
  }

  #publishInfo(force: boolean): void {
    if (!this.#running) return;
    let text: string;
    try {
      text = JSON.stringify(this.#o.info());
    } catch (err) {
      this.#log.error({ err }, 'bridge info failed');
      return;
    }
    if (!force && text === this.#lastInfo) return;
    this.#lastInfo = text;
    this.#lastPublishAt = Date.now();
    this.#send(message(this.#topics.info, text));
  }

  #sendDiscovery(): void {
    const ha = this.#o.settings.homeassistant;
    const all = discoveryMessages({ prefix: ha.discoveryPrefix, baseTopic: this.#o.settings.baseTopic, version: this.#o.version });
    for (const m of all) this.#send(message(m.topic, ha.enabled ? JSON.stringify(m.config) : ''));
  }

  /** Fire and forget: an external broker that is down must not hold the daemon (mqtt.js sends it on reconnect). */
  #send(m: BusMessage): void {
    this.#o.bus.publish(m).catch((err: unknown) => this.#log.warn({ err, topic: m.topic }, 'bridge publish failed'));
  }
}

function message(topic: string, payload: string): BusMessage {
  return { topic, payload: Buffer.from(payload, 'utf8'), qos: 1, retain: true };
}

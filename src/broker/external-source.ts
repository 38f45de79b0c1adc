/**
 * External broker mode (docs/security.md §External broker mode): instead of embedding aedes, the gateway connects with
 * mqtt.js to an existing broker (e.g. the Mosquitto zigbee2mqtt already uses), subscribes to the adapters' filters
 * and feeds the same ingest interceptors; downlink commands go out through the same connection.
 *
 * Durability (docs/architecture.md §Durability) carries over: the subscription is QoS 1 on a persistent session (fixed
 * client id, clean = false; MQTT 5: a session expiry), and the broker's PUBLISH is acknowledged only after its state
 * is committed. mqtt.js sends the PUBACK when `handleMessage`'s callback is called (lib/handlers/publish.js: for
 * QoS 1 `customHandleAcks` → 'message' → handleMessage → PUBACK, in both MQTT 3.1.1 and 5), so the callback is
 * delayed until the interceptors call back; `customHandleAcks` only chooses the reason code, and a failure code would
 * make the broker drop the message, so it is not used. When a commit fails, no PUBACK is sent and the connection is
 * dropped at once — the queued packets after it are discarded unacknowledged too, and the broker redelivers them in
 * order on the reconnect. Messages are handled one at a time (mqtt.js), so each QoS 1 message waits for one
 * group-commit window.
 *
 * Reconnects use our own backoff (mqtt.js `reconnectPeriod` is a fixed period): doubling from reconnectMinMs to
 * reconnectMaxMs with ±20 % jitter (util/backoff.ts, shared with the sync scheduler), reset after a successful CONNACK.
 */
import { readFileSync } from 'node:fs';
import mqtt, { ErrorWithSubackPacket, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { doublingDelays, retryDelayMs } from '../util/backoff.js';
import { runInterceptors, type BusMessage, type MessageBus, type PublishInterceptor } from './broker.js';

/** How long a stop lets in-flight messages finish before it cuts the connection. */
const STOP_DRAIN_MS = 2_000;

export interface ExternalSourceOptions {
  readonly url: string;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly clientId: string;
  readonly protocolVersion?: 4 | 5;
  readonly sessionExpirySeconds?: number;
  readonly keepaliveSeconds?: number;
  readonly connectTimeoutMs?: number;
  readonly caFile?: string | undefined;
  readonly rejectUnauthorized?: boolean;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** Topic filters to subscribe to (the adapters'). */
  readonly filters: readonly string[];
  /**
   * Filters the adapters learn at run time (Home Assistant discovery names state topics anywhere); subscribed on
   * every connect and, through `watchFilters`, as soon as they change.
   */
  readonly dynamicFilters?: () => readonly string[];
  /** Registers a listener for changes of dynamicFilters(); returns its removal. */
  readonly watchFilters?: (listener: () => void) => () => void;
  readonly logger: Logger;
  /** The connection's last will: the broker publishes it when the connection dies without a DISCONNECT. */
  readonly will?: BusMessage;
  /** Published on every CONNACK, before the subscriptions (what undoes the will after a reconnect). */
  readonly birth?: BusMessage;
  /** Jitter source; default Math.random. */
  readonly random?: () => number;
}

export interface ExternalSourceStatus {
  readonly connected: boolean;
  /** The broker URL without credentials. */
  readonly url: string;
  readonly connects: number;
  readonly consecutiveFailures: number;
  readonly lastError: string | null;
  /** Filters the broker refused (SUBACK 0x80): its ACL does not let the gateway read them. */
  readonly refusedFilters: readonly string[];
}

export interface ExternalSource extends MessageBus {
  /** Starts connecting (and keeps reconnecting); does not wait for the broker. */
  start(): void;
  /** Resolves once connected and subscribed (tests, `run` logs). */
  ready(): Promise<void>;
  stop(): Promise<void>;
  status(): ExternalSourceStatus;
}

/** Doubling delays from min to max: the reconnect schedule before jitter. */
export const reconnectDelays = doublingDelays;

function redactUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}

function clientOptions(options: ExternalSourceOptions): IClientOptions {
  const v5 = options.protocolVersion === 5;
  let ca: Buffer | undefined;
  if (options.caFile) {
    try {
      ca = readFileSync(options.caFile);
    } catch (err) {
      throw new ConfigError([`mqtt.external.caFile: cannot read ${options.caFile}: ${(err as Error).message}`], 'external broker');
    }
  }
  return {
    clientId: options.clientId,
    clean: false,
    protocolVersion: options.protocolVersion ?? 4,
    ...(v5 ? { properties: { sessionExpiryInterval: options.sessionExpirySeconds ?? 7 * 24 * 3600 } } : {}),
    keepalive: options.keepaliveSeconds ?? 30,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    reconnectPeriod: 0, // our own backoff
    resubscribe: false, // we subscribe on every CONNACK
    manualConnect: true,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(ca ? { ca } : {}),
    ...(options.will ? { will: { topic: options.will.topic, payload: options.will.payload, qos: options.will.qos, retain: options.will.retain } } : {}),
    rejectUnauthorized: options.rejectUnauthorized ?? true,
  };
}

export function createExternalSource(options: ExternalSourceOptions): ExternalSource {
  if (options.filters.length === 0) throw new RangeError('external broker: expected at least one topic filter to subscribe to (are all adapters off?)');
  const log = options.logger.child({ module: 'external-broker', url: redactUrl(options.url) });
  const random = options.random ?? Math.random;
  const delays = reconnectDelays(options.reconnectMinMs ?? 1000, options.reconnectMaxMs ?? 30_000);
  const interceptors: PublishInterceptor[] = [];
  const client: MqttClient = mqtt.connect(options.url, clientOptions(options));
  let stopping = false;
  let started = false;
  let subscribed = false;
  let timer: NodeJS.Timeout | undefined;
  const state = { connects: 0, consecutiveFailures: 0, lastError: null as string | null, refusedFilters: [] as string[] };
  const waiters: Array<() => void> = [];

  client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void): void => {
    const publish = { ...packet, cmd: 'publish' as const, topic: packet.topic.toString() };
    runInterceptors(interceptors, null, publish, (err) => {
      if (!err) {
        callback();
        return;
      }
      // Not acknowledged: drop the connection so the broker redelivers this message and the ones queued after it.
      log.error({ err, topic: publish.topic.slice(0, 200) }, 'commit failed; message not acknowledged, reconnecting for redelivery');
      callback(err);
      client.stream.destroy();
    });
  };

  client.on('connect', (connack) => {
    state.connects += 1;
    state.consecutiveFailures = 0;
    state.lastError = null;
    log.info({ sessionPresent: connack.sessionPresent }, 'connected to the external broker');
    const birth = options.birth;
    if (birth) {
      client.publishAsync(birth.topic, birth.payload, { qos: birth.qos, retain: birth.retain }).catch((err: unknown) => log.warn({ err, topic: birth.topic }, 'birth message not published'));
    }
    void subscribeAll().then(() => {
      subscribed = true;
      for (const resolve of waiters.splice(0)) resolve();
    });
  });

  /** Dynamic filters subscribed on the current connection. */
  let dynamicSubscribed = new Set<string>();
  function dynamicNow(): string[] {
    return [...new Set(options.dynamicFilters?.() ?? [])].filter((f) => !options.filters.includes(f));
  }
  const unwatch = options.watchFilters?.(() => {
    if (!client.connected) return; // the next connect subscribes everything
    const fresh = dynamicNow().filter((f) => !dynamicSubscribed.has(f));
    if (fresh.length > 0) void subscribe(fresh);
  });

  /** QoS 1 on every filter, static and learnt; a filter the broker refuses (0x80, its ACL) is logged and reported. */
  async function subscribeAll(): Promise<void> {
    dynamicSubscribed = new Set();
    await subscribe([...options.filters, ...dynamicNow()]);
  }

  async function subscribe(filters: readonly string[]): Promise<void> {
    for (const f of filters) if (!options.filters.includes(f)) dynamicSubscribed.add(f);
    let codes: number[];
    try {
      codes = (await client.subscribeAsync([...filters], { qos: 1 })).map((g) => g.qos);
    } catch (err) {
      if (!(err instanceof ErrorWithSubackPacket)) {
        log.warn({ err }, 'subscribe failed');
        return;
      }
      codes = err.packet.granted.map((g) => (typeof g === 'number' ? g : 128));
    }
    const refused = filters.filter((_f, i) => (codes[i] ?? 128) >= 128);
    state.refusedFilters = [...new Set([...state.refusedFilters.filter((f) => !filters.includes(f)), ...refused])];
    if (state.refusedFilters.length > 0) log.error({ filters: state.refusedFilters }, 'the external broker refused these subscriptions (its ACL)');
  }
  client.on('error', (err) => {
    state.lastError = err.message;
    log.warn({ err }, 'external broker error');
  });
  client.on('close', () => {
    subscribed = false;
    if (stopping) return;
    state.consecutiveFailures += 1;
    const delay = retryDelayMs(state.consecutiveFailures, random, 0.2, delays);
    log.warn({ inMs: delay, failures: state.consecutiveFailures }, 'external broker connection closed; reconnecting');
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!stopping) client.reconnect();
    }, delay);
  });

  return {
    start() {
      if (started) return;
      started = true;
      client.connect();
    },
    ready: () => (subscribed ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
    async stop() {
      stopping = true;
      unwatch?.();
      clearTimeout(timer);
      // Graceful first (in-flight QoS 1 messages finish), but bounded: a message the broker lost across its own
      // restart is never acknowledged, and mqtt.js would wait for it for ever. Then the connection is cut.
      let bound: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        client.endAsync(false).then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((resolve) => {
          bound = setTimeout(() => resolve(false), STOP_DRAIN_MS);
        }),
      ]);
      clearTimeout(bound);
      if (!drained) await client.endAsync(true).catch(() => undefined);
      log.info({ drained }, 'disconnected from the external broker');
    },
    status: () => ({ connected: client.connected, url: redactUrl(options.url), ...state, refusedFilters: [...state.refusedFilters] }),
    clientCount: () => (client.connected ? 1 : 0),
    addPublishInterceptor(fn) {
      interceptors.push(fn);
      return () => {
        const i = interceptors.indexOf(fn);
        if (i >= 0) interceptors.splice(i, 1);
      };
    },
    // Every message comes over the gateway's one connection: the devices behind the external broker are one account.
    accountOf: () => 'external',
    publish: async (message: BusMessage) => {
      await client.publishAsync(message.topic, message.payload, { qos: message.qos, retain: message.retain });
    },
  };
}

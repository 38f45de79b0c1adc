/**
 * The daemon's MQTT side from the `mqtt` config section: the embedded broker (aedes with users, ACLs, TLS and
 * WebSocket listeners, limits) or, with `mode: external`, a connection to an existing broker (docs/security.md).
 * Either way ingest sees one MessageBus.
 */
import type { Logger } from '../log.js';
import type { ExternalSource, ExternalSourceStatus } from './external-source.js';
import { createBrokerAuth } from './auth.js';
import { createBroker, type Broker, type BrokerAddress, type MessageBus, type PublishInterceptor, type BusMessage } from './broker.js';
import type { MqttConfig } from './config.js';

export interface MqttBus extends MessageBus {
  readonly mode: 'embedded' | 'external';
  /** Embedded: starts the listeners. External: starts connecting (does not wait for the broker). */
  start(): Promise<BrokerAddress>;
  stop(): Promise<void>;
  /** Embedded: the TCP listener's address once listening. External: the broker's address while connected. */
  address(): BrokerAddress | undefined;
  /** Refusals and connection errors by reason (embedded). */
  errorCounts(): Record<string, number>;
  /** The embedded broker (undefined in external mode). */
  readonly broker: Broker | undefined;
  /** The external connection (undefined in embedded mode). */
  readonly external: ExternalSource | undefined;
  externalStatus(): ExternalSourceStatus | undefined;
}

export interface MqttBusOptions {
  readonly mqtt: MqttConfig;
  readonly logger: Logger;
  /** The adapters' topic filters: what external mode subscribes to. */
  readonly filters: readonly string[];
  /** Filters adapters learn at run time, and how to hear of changes (external mode subscribes to them too). */
  readonly dynamicFilters?: () => readonly string[];
  readonly watchFilters?: (listener: () => void) => () => void;
  /** External mode: the connection's last will, and the message published on every (re)connect. */
  readonly will?: BusMessage;
  readonly birth?: BusMessage;
}

/** The embedded broker, or (mode external) a client of an existing broker; the mqtt client library is only loaded then. */
export async function createMqttBus(options: MqttBusOptions): Promise<MqttBus> {
  if (options.mqtt.mode !== 'external') return embeddedBus(options);
  const { createExternalSource } = await import('./external-source.js');
  return externalBus(options, createExternalSource);
}

function embeddedBus({ mqtt, logger }: MqttBusOptions): MqttBus {
  const auth =
    mqtt.users.length > 0 || mqtt.acl !== undefined || mqtt.allowAnonymous !== true
      ? createBrokerAuth({
          users: mqtt.users,
          userClientIds: mqtt.userClientIds,
          acl: mqtt.acl,
          allowAnonymous: mqtt.allowAnonymous,
          throttle: {
            failureBurst: mqtt.limits.authFailureBurst,
            failuresPerMinute: mqtt.limits.authFailuresPerMinute,
            maxConcurrent: mqtt.limits.maxConcurrentAuth,
            maxPendingPerHost: mqtt.limits.maxPendingAuthPerAddress,
          },
          logger,
        })
      : undefined;
  const broker = createBroker({
    host: mqtt.host,
    port: mqtt.port,
    logger,
    limits: { ...mqtt.limits, maxPayloadBytes: mqtt.maxPayloadBytes },
    ...(auth ? { auth } : {}),
    ...(mqtt.tls ? { tls: mqtt.tls } : {}),
    ...(mqtt.websocket ? { websocket: mqtt.websocket } : {}),
  });
  return {
    mode: 'embedded',
    broker,
    external: undefined,
    start: () => broker.start(),
    stop: () => broker.stop(),
    address: () => broker.address(),
    errorCounts: () => broker.errorCounts(),
    externalStatus: () => undefined,
    clientCount: () => broker.clientCount(),
    addPublishInterceptor: (fn: PublishInterceptor) => broker.addPublishInterceptor(fn),
    publish: (message: BusMessage) => broker.publish(message),
    accountOf: (client) => broker.accountOf(client),
  };
}

function externalBus(
  { mqtt, logger, filters, dynamicFilters, watchFilters, will, birth }: MqttBusOptions,
  createExternalSource: typeof import('./external-source.js').createExternalSource,
): MqttBus {
  const ext = mqtt.external;
  if (!ext) throw new RangeError('mqtt.external: expected the external broker (url, …) when mode is external');
  const source = createExternalSource({
    ...ext,
    filters: [...new Set(filters)],
    logger,
    ...(dynamicFilters ? { dynamicFilters } : {}),
    ...(watchFilters ? { watchFilters } : {}),
    ...(will ? { will } : {}),
    ...(birth ? { birth } : {}),
  });
  const url = new URL(ext.url);
  const defaultPort = { 'mqtt:': 1883, 'mqtts:': 8883, 'ws:': 80, 'wss:': 443 }[url.protocol] ?? 1883;
  const address: BrokerAddress = { host: url.hostname, port: url.port ? Number(url.port) : defaultPort };
  return {
    mode: 'external',
    broker: undefined,
    external: source,
    start: () => {
      source.start();
      return Promise.resolve(address);
    },
    stop: () => source.stop(),
    address: () => (source.status().connected ? address : undefined),
    errorCounts: () => ({}),
    externalStatus: () => source.status(),
    clientCount: () => source.clientCount(),
    addPublishInterceptor: (fn: PublishInterceptor) => source.addPublishInterceptor(fn),
    publish: (message: BusMessage) => source.publish(message),
    accountOf: (client) => source.accountOf(client),
  };
}

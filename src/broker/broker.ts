/**
 * The embedded MQTT broker (design.md §What runs): aedes 1.2 on a plain node:net TCP listener. Ingest hooks in
 * through `addPublishInterceptor`, which runs inside aedes's `authorizePublish` — the one hook aedes calls before it
 * writes a PUBACK (lib/handlers/publish.js: authorizePublish → enqueuePublish → PUBACK → publish), so a QoS 1
 * message is acknowledged only when every interceptor has called back (design.md §Durable ingest).
 *
 * Garbage on the port (random bytes, half packets, a socket that never sends CONNECT) ends that connection only; it
 * is counted by reason and logged through a RateLimitedLog.
 */
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { z } from 'zod';
import { ConfigError, isGatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { isLoopbackAddress, remoteAddressOf, type BrokerAuth } from './auth.js';
import { BrokerLimitsSchema, ConnectionGate, GuardedConnection } from './limits.js';
import {
  createTcpListener,
  createTlsListener,
  createWebSocketListener,
  type AcceptedConnection,
  type Listener,
  type ListenerKind,
  type TlsListenerOptions,
  type WebSocketListenerOptions,
  type WsModule,
} from './listeners.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';

/**
 * Runs before a PUBLISH is acknowledged; `done(null)` lets it through, `done(err)` withholds the PUBACK (the client
 * sends it again). An interceptor that could not keep a message refuses with a GatewayError of code
 * NOT_ACKNOWLEDGED; the broker counts it as `ingest_rejected` (errors cross by code, not by message text).
 */
export type PublishInterceptor = (
  client: Client | null,
  packet: PublishPacket,
  done: (err?: Error | null) => void,
) => void;

export type BrokerLimits = z.input<typeof BrokerLimitsSchema>;

const OptionsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65_535),
});

export interface BrokerOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly logger: Logger;
  readonly limits?: BrokerLimits;
  /** Users, anonymous policy and ACLs (auth.ts); omitted: every client may connect and do anything. */
  readonly auth?: BrokerAuth;
  /** An MQTT-over-TLS listener (usually port 8883). */
  readonly tls?: Omit<TlsListenerOptions, 'handshakeTimeoutMs'>;
  /** An MQTT-over-WebSocket listener. */
  readonly websocket?: Omit<WebSocketListenerOptions, 'maxMessageBytes'>;
}

/** One message to publish on the bus (downlink commands). */
export interface BusMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

/** What ingest needs from a broker: the embedded one, or the external broker's connection (external mode). */
export interface MessageBus {
  /** Runs `fn` for every PUBLISH from a client, in registration order, before it is acknowledged. */
  addPublishInterceptor(fn: PublishInterceptor): () => void;
  /** Connected MQTT clients (embedded), or 1 / 0 for the external connection. */
  clientCount(): number;
  /** Publishes from the gateway itself (not subject to ACLs, not seen by interceptors). */
  publish(message: BusMessage): Promise<void>;
}

export interface BrokerAddress {
  readonly host: string;
  readonly port: number;
}

export interface Broker extends MessageBus {
  /** The aedes instance: publishing (downlink) and events. Hooks go through addPublishInterceptor. */
  readonly aedes: Aedes;
  /** Starts every configured listener; resolves with the plain TCP one's address. */
  start(): Promise<BrokerAddress>;
  stop(): Promise<void>;
  address(): BrokerAddress | undefined;
  /** Bound port of each started listener. */
  listeners(): Partial<Record<ListenerKind, number>>;
  /** Connection-level errors and refusals (limits, auth) by reason since start. */
  errorCounts(): Record<string, number>;
}

/** Maps aedes / mqtt-packet / socket errors to a small set of stable reasons. */
export function classifyBrokerError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection_reset';
  if (code === 'ETIMEDOUT') return 'socket_timeout';
  const m = err.message;
  if (m.includes('connect did not arrive')) return 'connect_timeout';
  if (m === 'Invalid protocol') return 'protocol_violation';
  if (m.includes('queue limit')) return 'queue_limit';
  if (m.startsWith('packet too large')) return 'packet_too_large';
  if (m.startsWith('inflight limit')) return 'inflight_limit';
  if (m.includes('drain timeout')) return 'drain_timeout';
  if (m.includes('keep') && m.includes('alive')) return 'keepalive_timeout';
  if (isGatewayError(err) && err.code === 'NOT_ACKNOWLEDGED') return 'ingest_rejected'; // an interceptor's refusal
  if (/invalid|malformed|cannot parse|not supported|unknown|too (long|large|many)|must|header|length/i.test(m)) {
    return 'malformed_packet';
  }
  return 'other';
}

const SYS_PREFIX = '$SYS/';
/**
 * Where a refused PUBLISH goes: rewriting the packet in authorizePublish (as aedes's docs show) lets aedes acknowledge
 * it by the normal QoS rules while no one can receive it — every subscription to this level is refused.
 */
const DROPPED_TOPIC = '$DROPPED/refused';
const DROPPED_LEVEL = '$DROPPED';

type Limits = z.output<typeof BrokerLimitsSchema>;

function validateOptions(options: BrokerOptions): Limits {
  const parsed = OptionsSchema.safeParse({ host: options.host, port: options.port });
  const limitsParsed = BrokerLimitsSchema.safeParse(options.limits ?? {});
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `broker.${i.path.join('.')}: ${i.message}`)),
    ...(limitsParsed.success ? [] : limitsParsed.error.issues.map((i) => `broker.limits.${i.path.join('.')}: ${i.message}`)),
  ];
  if (!parsed.success || !limitsParsed.success) throw new ConfigError(problems, 'createBroker options');
  return limitsParsed.data;
}

interface AedesDeps {
  readonly limits: Limits;
  readonly interceptors: readonly PublishInterceptor[];
  readonly errors: RateLimitedLog;
  readonly auth: BrokerAuth | undefined;
}

/** aedes with our auth, publish and subscribe hooks, and its connection errors counted by reason. */
function createAedes(deps: AedesDeps): Aedes {
  const { limits, errors, auth } = deps;
  const aedes = new Aedes({
    connectTimeout: limits.connectTimeoutMs,
    queueLimit: limits.queueLimit,
    maxClientsIdLength: limits.maxClientIdLength,
    drainTimeout: limits.drainTimeoutMs,
    maxInflightInbound: limits.maxInflightPerClient,
    ...(auth ? { authenticate: auth.authenticate } : {}),
    authorizeSubscribe: (client, sub, callback) => {
      // design.md §Broker refusals follow MQTT: (null, null) grants 0x80 for this filter, the connection stays.
      const refused = sub.topic.split('/', 1)[0] === DROPPED_LEVEL || (auth !== undefined && !auth.maySubscribe(client, sub.topic));
      callback(null, refused ? null : sub);
    },
    authorizePublish: createAuthorizePublish(deps),
  });
  const onClientError = (client: Client | null, err: Error): void => {
    errors.record(classifyBrokerError(err), 'mqtt connection error', {
      clientId: client?.id ?? undefined,
      remote: remoteOf(client),
      error: err.message,
    });
  };
  aedes.on('clientError', onClientError);
  aedes.on('connectionError', onClientError);
  const emitter: EventEmitter = aedes; // 'error' is not in aedes's typed overloads
  emitter.on('error', (err: Error) => errors.record('broker_error', 'aedes error', { error: err.message }));
  return aedes;
}

/**
 * The PUBLISH gate, in order: `$SYS/` is reserved (closes, as aedes's default does); a payload over the limit or a
 * topic the ACL denies is acknowledged and dropped (MQTT 3.1.1 §3.3.5) before any interceptor — so ingest never
 * stores it; too many unacknowledged QoS ≥ 1 messages close the client; the rest runs the interceptors (ingest).
 */
function createAuthorizePublish(deps: AedesDeps): (client: Client | null, packet: PublishPacket, callback: (err?: Error | null) => void) => void {
  const { limits, interceptors, errors, auth } = deps;
  const inflight = new WeakMap<Client, number>();
  return (client, packet, callback) => {
    if (packet.topic.startsWith(SYS_PREFIX)) {
      callback(new Error(`${SYS_PREFIX} topics are reserved`));
      return;
    }
    const size = packet.payload.length;
    const refusal = size > limits.maxPayloadBytes ? 'payload_too_large' : auth && !auth.mayPublish(client, packet.topic) ? 'acl' : undefined;
    if (refusal !== undefined) {
      if (refusal === 'payload_too_large') {
        errors.record('payload_too_large', 'mqtt publish dropped: payload too large', { clientId: client?.id, topic: packet.topic.slice(0, 200), bytes: size });
      }
      packet.topic = DROPPED_TOPIC;
      packet.retain = false;
      packet.payload = Buffer.alloc(0);
      callback(null);
      return;
    }
    if (packet.qos === 0 || !client) {
      runInterceptors(interceptors, client, packet, callback);
      return;
    }
    const pending = (inflight.get(client) ?? 0) + 1;
    if (pending > limits.maxInflightPerClient) {
      callback(new Error(`inflight limit: more than ${limits.maxInflightPerClient} unacknowledged QoS ${packet.qos} messages`));
      return;
    }
    inflight.set(client, pending);
    runInterceptors(interceptors, client, packet, (err) => {
      inflight.set(client, (inflight.get(client) ?? 1) - 1);
      callback(err);
    });
  };
}

/** Admits a raw socket through the gate (closing it when refused) and releases the slot when it closes. */
function createAdmit(gate: ConnectionGate, limits: Limits, errors: RateLimitedLog): (socket: Socket) => boolean {
  return (socket) => {
    const address = socket.remoteAddress;
    const refusal = gate.admit(address, limits.rateLimitLoopback || !isLoopbackAddress(address));
    if (refusal !== undefined) {
      errors.record(refusal, 'mqtt connection refused', { remote: address });
      socket.destroy();
      return false;
    }
    socket.once('close', () => gate.release());
    return true;
  };
}

export function createBroker(options: BrokerOptions): Broker {
  const limits = validateOptions(options);
  const log = options.logger.child({ module: 'broker' });
  const errors = new RateLimitedLog({ logger: log, intervalMs: limits.errorLogIntervalMs, level: 'warn' });
  const interceptors: PublishInterceptor[] = [];
  const aedes = createAedes({ limits, interceptors, errors, auth: options.auth });
  const maxPacketBytes = limits.maxPacketBytes ?? limits.maxPayloadBytes + 65_536;

  let listeners: Listener[] = [];
  let ports: Partial<Record<ListenerKind, number>> = {};
  let bound: BrokerAddress | undefined;

  function accept(c: AcceptedConnection): void {
    const conn = new GuardedConnection(c.stream, { maxPacketBytes, remoteAddress: c.remoteAddress, remotePort: c.remotePort });
    conn.on('error', () => undefined); // aedes reports it through clientError/connectionError
    aedes.handle(conn, c.req);
  }

  function createListeners(ws: WsModule | undefined): Listener[] {
    const gate = new ConnectionGate({
      maxConnections: limits.maxConnections,
      connectionBurst: limits.connectionBurst,
      connectionsPerMinute: limits.connectionsPerMinute,
    });
    const hooks = {
      admit: createAdmit(gate, limits, errors),
      accept,
      onError: (reason: string, err: Error) => errors.record(reason, 'mqtt listener error', { error: err.message }),
    };
    const list = [createTcpListener({ host: options.host, port: options.port }, hooks)];
    if (options.tls) list.push(createTlsListener({ ...options.tls, handshakeTimeoutMs: limits.connectTimeoutMs }, hooks));
    if (options.websocket && ws) list.push(createWebSocketListener({ ...options.websocket, maxMessageBytes: maxPacketBytes }, hooks, ws));
    return list;
  }

  async function start(): Promise<BrokerAddress> {
    if (listeners.length > 0) throw new Error('broker already started');
    // `ws` is loaded only when a WebSocket listener is configured: it costs the daemon ~9 MB of memory.
    const ws = options.websocket ? await import('ws') : undefined;
    listeners = createListeners(ws); // reads the TLS files: a ConfigError before anything runs
    await aedes.listen();
    try {
      for (const listener of listeners) ports[listener.kind] = await listener.start();
    } catch (err) {
      await stopListeners();
      throw err;
    }
    bound = { host: options.host, port: ports.tcp ?? options.port };
    log.info({ host: bound.host, ...ports }, 'mqtt broker listening');
    return bound;
  }

  async function stopListeners(): Promise<void> {
    const list = listeners;
    listeners = [];
    ports = {};
    await Promise.all(list.map((l) => l.stop()));
  }

  async function stop(): Promise<void> {
    const closing = stopListeners();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await closing;
    errors.flush();
    options.auth?.flush();
    if (bound) log.info({ port: bound.port }, 'mqtt broker stopped');
    bound = undefined;
  }

  return {
    aedes,
    start,
    stop,
    clientCount: () => (aedes.closed ? 0 : aedes.connectedClients),
    address: () => bound,
    listeners: () => ({ ...ports }),
    addPublishInterceptor(fn) {
      interceptors.push(fn);
      return () => {
        const i = interceptors.indexOf(fn);
        if (i >= 0) interceptors.splice(i, 1);
      };
    },
    publish: (message) =>
      new Promise<void>((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain, dup: false },
          (err?: Error) => (err ? reject(err) : resolve()),
        );
      }),
    errorCounts: () => ({ ...errors.counts(), ...options.auth?.counts() }),
  };
}

/** Runs the interceptors in order; the first error stops the chain (also used by the external broker source). */
export function runInterceptors(
  list: readonly PublishInterceptor[],
  client: Client | null,
  packet: PublishPacket,
  callback: (err?: Error | null) => void,
): void {
  if (list.length === 0) {
    callback(null);
    return;
  }
  if (list.length === 1) {
    (list[0] as PublishInterceptor)(client, packet, callback);
    return;
  }
  const snapshot = list.slice();
  let i = 0;
  const next = (err?: Error | null): void => {
    const fn = snapshot[i];
    i += 1;
    if (err || fn === undefined) callback(err ?? null);
    else fn(client, packet, next);
  };
  next();
}

function remoteOf(client: Client | null): string | undefined {
  const conn = client?.conn as Partial<Socket> | undefined;
  if (!conn || typeof conn.remoteAddress !== 'string') return undefined;
  return `${conn.remoteAddress}:${String(conn.remotePort)}`;
}

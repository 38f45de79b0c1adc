/**
 * The embedded MQTT broker (docs/security.md): aedes 1.2 behind the gateway's listeners (TCP, TLS, WebSocket).
 * Ingest hooks in through `addPublishInterceptor`, which runs inside aedes's `authorizePublish` — the one hook aedes
 * calls before it writes a PUBACK (lib/handlers/publish.js: authorizePublish → enqueuePublish → PUBACK → publish), so
 * a QoS 1 message is acknowledged only when every interceptor has called back (docs/architecture.md §Durability).
 *
 * Every raw socket passes the ConnectionGate (limits.ts) and every byte the PacketScanner (packet-scan.ts) before
 * aedes sees it; aedes's hooks are in aedes-hooks.ts. Garbage on the port (random bytes, half packets, a socket that
 * never sends CONNECT) ends that connection only; it is counted by reason and logged through a RateLimitedLog.
 */
import type { Socket } from 'node:net';
import type { Aedes, Client } from 'aedes';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { createGatewayAedes, type Limits, type PublishInterceptor } from './aedes-hooks.js';
import { createOpenAuth, type BrokerAuth } from './auth.js';
import { GuardedConnection } from './guarded-connection.js';
import { BrokerLimitsSchema, ConnectionGate, type GateTicket } from './limits.js';
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
import { isLoopbackAddress } from './peers.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import type { RetainedUsage } from './retained.js';

export { classifyBrokerError, runInterceptors, type PublishInterceptor } from './aedes-hooks.js';

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
  /**
   * The identity account a publishing client counts against (ingest's device limits): `user:<name>` or
   * `anonymous@<host>` (embedded broker), `external` for everything read from an external broker.
   */
  accountOf(client: Client | null): string;
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
  /** Retained messages held: in total, or of one identity account (`user:<name>`, `anonymous@<host>`). */
  retainedUsage(account?: string): RetainedUsage;
}

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

/** Admits a raw socket through the gate (closing it when refused) and releases the slot when it closes. */
function createAdmit(gate: ConnectionGate, limits: Limits, errors: RateLimitedLog): (socket: Socket) => GateTicket | undefined {
  return (socket) => {
    const address = socket.remoteAddress;
    const admitted = gate.admit(address, {
      rateLimited: limits.rateLimitLoopback || !isLoopbackAddress(address),
      evict: () => socket.destroy(),
    });
    if (!admitted.ok) {
      errors.record(admitted.refusal, 'mqtt connection refused', { remote: address });
      socket.destroy();
      return undefined;
    }
    if (admitted.evicted > 0) errors.record('silent_socket_displaced', 'mqtt socket without CONNECT closed to make room', { remote: address });
    socket.once('close', () => admitted.ticket.release());
    return admitted.ticket;
  };
}

export function createBroker(options: BrokerOptions): Broker {
  const limits = validateOptions(options);
  const log = options.logger.child({ module: 'broker' });
  const errors = new RateLimitedLog({ logger: log, intervalMs: limits.errorLogIntervalMs, level: 'warn' });
  const interceptors: PublishInterceptor[] = [];
  const auth = options.auth ?? createOpenAuth(options.logger);
  const tickets = new WeakMap<object, GateTicket>();
  const gateway = createGatewayAedes({ limits, interceptors, errors, auth, ticketOf: (conn) => tickets.get(conn) });
  const aedes = gateway.aedes;
  const maxPacketBytes = limits.maxPacketBytes ?? limits.maxPayloadBytes + 65_536;

  let listeners: Listener[] = [];
  let ports: Partial<Record<ListenerKind, number>> = {};
  let bound: BrokerAddress | undefined;

  function accept(c: AcceptedConnection): void {
    const conn = new GuardedConnection(c.stream, { maxPacketBytes, remoteAddress: c.remoteAddress, remotePort: c.remotePort });
    conn.on('error', () => undefined); // aedes reports it through clientError/connectionError
    tickets.set(conn, c.ticket);
    aedes.handle(conn, c.req);
  }

  function createListeners(ws: WsModule | undefined): Listener[] {
    const gate = new ConnectionGate({
      maxConnections: limits.maxConnections,
      maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
      connectionBurst: limits.connectionBurst,
      connectionsPerMinute: limits.connectionsPerMinute,
    });
    const hooks = {
      admit: createAdmit(gate, limits, errors),
      accept,
      onError: (reason: string, err: Error) => errors.record(reason, 'mqtt listener error', { error: err.message.slice(0, 300) }),
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
    await gateway.listen();
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
    auth.flush();
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
    accountOf: (client) => auth.identityOf(client)?.account ?? 'unknown',
    errorCounts: () => ({ ...errors.counts(), ...auth.counts() }),
    retainedUsage: (account) => (account === undefined ? gateway.retained.total() : gateway.retained.usage(account)),
  };
}

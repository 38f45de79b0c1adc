/**
 * aedes with the gateway's hooks (broker.ts starts and stops it):
 *
 * - preConnect / authenticate: the CONNECT pipeline (connect.ts);
 * - authorizePublish: the PUBLISH gate, then the ingest interceptors (the one hook before aedes writes a PUBACK);
 * - authorizeSubscribe: the ACL for each filter (0x80 when refused, the connection stays);
 * - authorizeForward: the ACL again for every delivery, and the granted QoS (delivery.ts);
 * - persistence: aedes's in-memory one, with the retained-message quota in front of it (retained.ts).
 */
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import type { z } from 'zod';
import { isGatewayError } from '../errors.js';
import type { BrokerAuth } from './auth.js';
import { createConnectHooks, type ConnectHooks } from './connect.js';
import { createAuthorizeForward, deliverAtGrantedQos } from './delivery.js';
import type { BrokerLimitsSchema, GateTicket } from './limits.js';
import { clip } from './log-fields.js';
import type { RateLimitedLog } from '../util/rate-limited-log.js';
import { limitRetained, RetainedQuota } from './retained.js';
import { SessionOwners } from './sessions.js';

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

export type Limits = z.output<typeof BrokerLimitsSchema>;

export interface AedesDeps {
  readonly limits: Limits;
  readonly interceptors: readonly PublishInterceptor[];
  readonly errors: RateLimitedLog;
  readonly auth: BrokerAuth;
  /** The gate ticket of a connection aedes was handed (GuardedConnection → ticket). */
  readonly ticketOf: (conn: object) => GateTicket | undefined;
}

export interface GatewayAedes {
  readonly aedes: Aedes;
  readonly connect: ConnectHooks;
  readonly sessions: SessionOwners;
  readonly retained: RetainedQuota;
  /** Starts aedes (its in-memory persistence is created then) and puts the retained quota in front of it. */
  listen(): Promise<void>;
}

const SYS_PREFIX = '$SYS/';
/**
 * Where a refused PUBLISH goes: rewriting the packet in authorizePublish (as aedes's docs show) lets aedes acknowledge
 * it by the normal QoS rules while no one can receive it — every subscription to this level is refused.
 */
const DROPPED_TOPIC = '$DROPPED/refused';
const DROPPED_LEVEL = '$DROPPED';

/** Maps aedes / mqtt-packet / socket errors to a small set of stable reasons (by `code` where there is one). */
export function classifyBrokerError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection_reset';
  if (code === 'ETIMEDOUT') return 'socket_timeout';
  if (code === 'MQTT_PACKET_TOO_LARGE') return 'packet_too_large';
  if (code === 'MQTT_INVALID_STRING') return 'invalid_string';
  if (code === 'MQTT_MALFORMED_LENGTH') return 'malformed_packet';
  const m = err.message;
  if (m.includes('connect did not arrive')) return 'connect_timeout';
  if (m === 'Invalid protocol') return 'protocol_violation';
  if (m.includes('queue limit')) return 'queue_limit';
  if (m.startsWith('packet too large')) return 'packet_too_large';
  if (m.startsWith('inflight limit')) return 'inflight_limit';
  if (m.includes('drain timeout')) return 'drain_timeout';
  if (m.includes('keep') && m.includes('alive')) return 'keepalive_timeout';
  if (m.startsWith('connect refused')) return 'connect_refused';
  if (isGatewayError(err) && err.code === 'NOT_ACKNOWLEDGED') return 'ingest_rejected'; // an interceptor's refusal
  if (/invalid|malformed|cannot parse|not supported|unknown|too (long|large|many)|must|header|length/i.test(m)) {
    return 'malformed_packet';
  }
  return 'other';
}

function remoteOf(client: Client | null): string | undefined {
  const conn = client?.conn as Partial<Socket> | undefined;
  if (!conn || typeof conn.remoteAddress !== 'string') return undefined;
  return `${conn.remoteAddress}:${String(conn.remotePort)}`;
}

/** aedes with our hooks, and its connection errors counted by reason. */
export function createGatewayAedes(deps: AedesDeps): GatewayAedes {
  const { limits, errors, auth } = deps;
  const sessions = new SessionOwners();
  const retained = new RetainedQuota({
    maxMessages: limits.maxRetainedMessages,
    maxBytes: limits.maxRetainedBytes,
    maxMessagesPerIdentity: limits.maxRetainedMessagesPerIdentity,
    maxBytesPerIdentity: limits.maxRetainedBytesPerIdentity,
  });
  /** Who published each retained payload in flight (the payload Buffer travels by reference to storeRetained). */
  const retainedOwners = new WeakMap<Buffer, string>();
  let aedes: Aedes | undefined;
  const connect = createConnectHooks({
    auth,
    sessions,
    errors,
    maxClientIdBytes: limits.maxClientIdBytes,
    maxConnectionsPerIdentity: limits.maxConnectionsPerIdentity,
    connectedClient: (id) => connectedClient(aedes, id),
    onConnectPacket: (client) => {
      deps.ticketOf(client.conn)?.connectReceived();
      deliverAtGrantedQos(client);
    },
  });
  aedes = new Aedes({
    connectTimeout: limits.connectTimeoutMs,
    queueLimit: limits.queueLimit,
    maxClientsIdLength: limits.maxClientIdLength,
    drainTimeout: limits.drainTimeoutMs,
    maxInflightInbound: limits.maxInflightPerClient,
    preConnect: connect.preConnect,
    authenticate: connect.authenticate,
    authorizeSubscribe: (client, sub, callback) => {
      // docs/security.md §Topic ACL: (null, null) grants 0x80 for this filter, the connection stays.
      const refused = sub.topic.split('/', 1)[0] === DROPPED_LEVEL || !auth.maySubscribe(client, sub.topic);
      callback(null, refused ? null : sub);
    },
    authorizePublish: createAuthorizePublish(deps, (payload, client) => {
      const account = auth.identityOf(client)?.account;
      if (account !== undefined) retainedOwners.set(payload, account);
    }),
    authorizeForward: createAuthorizeForward(auth),
  });
  const onClientError = (client: Client | null, err: Error): void => {
    errors.record(classifyBrokerError(err), 'mqtt connection error', { clientId: clip(client?.id), remote: remoteOf(client), error: clip(err.message, 300) });
  };
  aedes.on('clientError', onClientError);
  aedes.on('connectionError', onClientError);
  const emitter: EventEmitter = aedes; // 'error' is not in aedes's typed overloads
  emitter.on('error', (err: Error) => errors.record('broker_error', 'aedes error', { error: clip(err.message, 300) }));
  const instance = aedes;
  async function listen(): Promise<void> {
    await instance.listen();
    const persistence: unknown = Reflect.get(instance, 'persistence');
    if (typeof persistence !== 'object' || persistence === null) throw new TypeError('aedes has no persistence after listen()');
    limitRetained(persistence, {
      quota: retained,
      ownerOf: (payload) => retainedOwners.get(payload),
      onRefused: (topic, owner, bytes) => errors.record('retained_limit', 'retained message not kept: retained limit reached', { topic: clip(topic), owner: clip(owner), bytes }),
    });
  }
  return { aedes, connect, sessions, retained, listen };
}

function connectedClient(aedes: Aedes | undefined, id: string): Client | undefined {
  const clients: unknown = aedes ? Reflect.get(aedes, 'clients') : undefined;
  if (typeof clients !== 'object' || clients === null) return undefined;
  const client: unknown = Reflect.get(clients, id);
  return typeof client === 'object' && client !== null && 'conn' in client ? (client as Client) : undefined;
}

/**
 * The PUBLISH gate, in order: `$SYS/` is reserved (closes, as aedes's default does); a payload over the limit or a
 * topic the ACL denies is acknowledged and dropped (MQTT 3.1.1 §3.3.5) before any interceptor — so ingest never
 * stores it; too many unacknowledged QoS ≥ 1 messages close the client; the rest runs the interceptors (ingest).
 */
function createAuthorizePublish(
  deps: AedesDeps,
  noteRetained: (payload: Buffer, client: Client | null) => void,
): (client: Client | null, packet: PublishPacket, callback: (err?: Error | null) => void) => void {
  const { limits, interceptors, errors, auth } = deps;
  const inflight = new WeakMap<Client, number>();
  return (client, packet, callback) => {
    if (packet.topic.startsWith(SYS_PREFIX)) {
      callback(new Error(`${SYS_PREFIX} topics are reserved`));
      return;
    }
    const size = packet.payload.length;
    const refusal = size > limits.maxPayloadBytes ? 'payload_too_large' : !auth.mayPublish(client, packet.topic) ? 'acl' : undefined;
    if (refusal !== undefined) {
      if (refusal === 'payload_too_large') {
        errors.record('payload_too_large', 'mqtt publish dropped: payload too large', { clientId: clip(client?.id), topic: clip(packet.topic), bytes: size });
      }
      packet.topic = DROPPED_TOPIC;
      packet.retain = false;
      packet.payload = Buffer.alloc(0);
      callback(null);
      return;
    }
    if (packet.retain && Buffer.isBuffer(packet.payload)) noteRetained(packet.payload, client);
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

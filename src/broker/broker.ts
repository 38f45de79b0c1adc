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
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { RateLimitedLog } from './rate-limited-log.js';

export type PublishInterceptor = (
  client: Client | null,
  packet: PublishPacket,
  done: (err?: Error | null) => void,
) => void;

const LimitsSchema = z.strictObject({
  /** A socket that has not sent CONNECT by then is closed (aedes `connectTimeout`). */
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  /** Packets buffered before CONNACK (aedes `queueLimit`). */
  queueLimit: z.number().int().min(1).max(100_000).default(42),
  maxClientIdLength: z.number().int().min(1).max(65_535).default(23),
  /** Simultaneous TCP connections; further ones are refused by the listener. */
  maxConnections: z.number().int().min(1).max(1_000_000).default(1000),
  /** A client whose socket stays full this long is disconnected (aedes `drainTimeout`). */
  drainTimeoutMs: z.number().int().min(0).max(600_000).default(60_000),
  /** Seconds between two lines per error reason. */
  errorLogIntervalMs: z.number().int().min(0).max(3_600_000).default(10_000),
});
export type BrokerLimits = z.input<typeof LimitsSchema>;

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
}

export interface BrokerAddress {
  readonly host: string;
  readonly port: number;
}

export interface Broker {
  /** The aedes instance: publishing (downlink) and events. Hooks go through addPublishInterceptor. */
  readonly aedes: Aedes;
  start(): Promise<BrokerAddress>;
  stop(): Promise<void>;
  /** Connected MQTT clients (after CONNACK). */
  clientCount(): number;
  address(): BrokerAddress | undefined;
  /** Runs `fn` for every PUBLISH from a client, in registration order, before it is acknowledged. */
  addPublishInterceptor(fn: PublishInterceptor): () => void;
  /** Connection-level errors by reason since start. */
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
  if (m.includes('drain timeout')) return 'drain_timeout';
  if (m.includes('keep') && m.includes('alive')) return 'keepalive_timeout';
  if (m.startsWith('ingest:')) return 'ingest_rejected';
  if (/invalid|malformed|cannot parse|not supported|unknown|too (long|large|many)|must|header|length/i.test(m)) {
    return 'malformed_packet';
  }
  return 'other';
}

const SYS_PREFIX = '$SYS/';

type Limits = z.output<typeof LimitsSchema>;

function validateOptions(options: BrokerOptions): Limits {
  const parsed = OptionsSchema.safeParse({ host: options.host, port: options.port });
  const limitsParsed = LimitsSchema.safeParse(options.limits ?? {});
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `broker.${i.path.join('.')}: ${i.message}`)),
    ...(limitsParsed.success ? [] : limitsParsed.error.issues.map((i) => `broker.limits.${i.path.join('.')}: ${i.message}`)),
  ];
  if (!parsed.success || !limitsParsed.success) throw new ConfigError(problems, 'createBroker options');
  return limitsParsed.data;
}

/** aedes with our publish hook and its connection errors counted by reason. */
function createAedes(limits: Limits, interceptors: readonly PublishInterceptor[], errors: RateLimitedLog): Aedes {
  const aedes = new Aedes({
    connectTimeout: limits.connectTimeoutMs,
    queueLimit: limits.queueLimit,
    maxClientsIdLength: limits.maxClientIdLength,
    drainTimeout: limits.drainTimeoutMs,
    authorizePublish: (client, packet, callback) => {
      if (packet.topic.startsWith(SYS_PREFIX)) {
        callback(new Error(`${SYS_PREFIX} topics are reserved`));
        return;
      }
      runInterceptors(interceptors, client, packet, callback);
    },
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

function listen(srv: Server, port: number, host: string): Promise<BrokerAddress> {
  return new Promise<BrokerAddress>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => {
      srv.off('error', reject);
      const addr = srv.address();
      resolve({ host, port: typeof addr === 'object' && addr ? addr.port : port });
    });
  });
}

export function createBroker(options: BrokerOptions): Broker {
  const limits = validateOptions(options);
  const log = options.logger.child({ module: 'broker' });
  const errors = new RateLimitedLog({ logger: log, intervalMs: limits.errorLogIntervalMs, level: 'warn' });
  const interceptors: PublishInterceptor[] = [];

  const aedes = createAedes(limits, interceptors, errors);

  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let bound: BrokerAddress | undefined;

  async function start(): Promise<BrokerAddress> {
    if (server) throw new Error('broker already started');
    await aedes.listen();
    const srv = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => undefined); // aedes reports it through clientError/connectionError
      aedes.handle(socket);
    });
    srv.maxConnections = limits.maxConnections;
    server = srv;
    bound = await listen(srv, options.port, options.host);
    srv.on('error', (err) => errors.record('listener_error', 'mqtt listener error', { error: err.message }));
    log.info({ host: bound.host, port: bound.port }, 'mqtt broker listening');
    return bound;
  }

  async function stop(): Promise<void> {
    const srv = server;
    server = undefined;
    const closed = srv ? new Promise<void>((resolve) => srv.close(() => resolve())) : Promise.resolve();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
    errors.flush();
    if (bound) log.info({ port: bound.port }, 'mqtt broker stopped');
    bound = undefined;
  }

  return {
    aedes,
    start,
    stop,
    clientCount: () => (aedes.closed ? 0 : aedes.connectedClients),
    address: () => bound,
    addPublishInterceptor(fn) {
      interceptors.push(fn);
      return () => {
        const i = interceptors.indexOf(fn);
        if (i >= 0) interceptors.splice(i, 1);
      };
    },
    errorCounts: () => errors.counts(),
  };
}

function runInterceptors(
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

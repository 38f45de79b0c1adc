/**
 * Limits that keep a misbehaving client from exhausting the gateway's memory or locking others out
 * (docs/security.md §Limits): the `mqtt.limits` schema, and the ConnectionGate every raw socket passes before any MQTT,
 * TLS or WebSocket work is done for it:
 *
 * - at most `maxConnections` sockets over every listener, and at most `maxConnectionsPerAddress` from one host
 *   (peers.ts: all of loopback is one host) — loopback included, so one local process cannot take every slot;
 * - per host a token bucket of `connectionBurst` connections refilled at `connectionsPerMinute` (loopback skips it
 *   unless `rateLimitLoopback`);
 * - when a cap is reached, the new socket takes the place of the oldest socket of that scope that has not sent its
 *   CONNECT yet (a silent socket holds a slot for `connectTimeoutMs` otherwise); only when there is none is it closed.
 */
import { z } from 'zod';
import { KeyedTokenBuckets } from '../util/token-bucket.js';
import { hostKey } from './peers.js';

const MiB = 1024 * 1024;

/** The broker's limits; also the `mqtt.limits` section of the gateway config. */
export const BrokerLimitsSchema = z.strictObject({
  /** A socket that has not sent CONNECT by then is closed (aedes `connectTimeout`). */
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  /** Packets buffered before CONNACK (aedes `queueLimit`). */
  queueLimit: z.number().int().min(1).max(100_000).default(42),
  /** MQTT 3.1 clients: longest client id (aedes `maxClientsIdLength`, identifier rejected beyond). */
  maxClientIdLength: z.number().int().min(1).max(65_535).default(23),
  /** Every protocol version: a longer client id (UTF-8 bytes) gets CONNACK 2, identifier rejected. */
  maxClientIdBytes: z.number().int().min(23).max(65_535).default(256),
  /** Simultaneous connections over every listener; further ones are closed at once. */
  maxConnections: z.number().int().min(1).max(1_000_000).default(1000),
  /** Simultaneous connections from one host (all of loopback is one host). */
  maxConnectionsPerAddress: z.number().int().min(1).max(1_000_000).default(500),
  /** Simultaneous connections of one identity: a username, or the anonymous clients of one host. CONNACK 3 beyond. */
  maxConnectionsPerIdentity: z.number().int().min(1).max(1_000_000).default(250),
  /** A PUBLISH with a larger payload is acknowledged and dropped (not delivered, not stored). */
  maxPayloadBytes: z.number().int().min(16).max(256 * MiB).default(256 * 1024),
  /** A packet declaring a larger remaining length closes its connection before it is buffered; default payload + 64 KiB. */
  maxPacketBytes: z.number().int().min(64).max(268_435_455).optional(),
  /** QoS 1/2 PUBLISHes of one client waiting for their acknowledgement (ingest commit); beyond, the client is closed. */
  maxInflightPerClient: z.number().int().min(1).max(65_535).default(1000),
  /** Per host: connections at once, then `connectionsPerMinute` (token bucket). */
  connectionBurst: z.number().int().min(1).max(1_000_000).default(20),
  connectionsPerMinute: z.number().min(1).max(1_000_000).default(120),
  /** Loopback clients (the gateway's own tools, a zigbee2mqtt on the same Pi) skip the per-host rate. */
  rateLimitLoopback: z.boolean().default(false),
  /** Failed password checks a host may make at once, then `authFailuresPerMinute`; beyond, CONNACK 5 without hashing. */
  authFailureBurst: z.number().int().min(1).max(1_000_000).default(10),
  authFailuresPerMinute: z.number().min(0.1).max(1_000_000).default(6),
  /** Password verifications (scrypt, on libuv's threadpool) running at once, taken round-robin by host. */
  maxConcurrentAuth: z.number().int().min(1).max(64).default(2),
  /** Verifications one host may have running or waiting; beyond, CONNACK 5 without hashing. */
  maxPendingAuthPerAddress: z.number().int().min(1).max(10_000).default(4),
  /** Retained messages kept, in total and per identity; bytes are payload plus topic. Beyond, not retained. */
  maxRetainedMessages: z.number().int().min(1).max(10_000_000).default(50_000),
  maxRetainedBytes: z.number().int().min(1024).max(4096 * MiB).default(64 * MiB),
  maxRetainedMessagesPerIdentity: z.number().int().min(1).max(10_000_000).default(10_000),
  maxRetainedBytesPerIdentity: z.number().int().min(1024).max(4096 * MiB).default(16 * MiB),
  /** A client whose socket stays full this long is disconnected (aedes `drainTimeout`). */
  drainTimeoutMs: z.number().int().min(0).max(600_000).default(60_000),
  /** Seconds between two lines per error reason. */
  errorLogIntervalMs: z.number().int().min(0).max(3_600_000).default(10_000),
});

export type GateRefusal = 'too_many_connections' | 'too_many_from_address' | 'connection_rate_limited';

export interface ConnectionGateOptions {
  readonly maxConnections: number;
  /** Connections one host may hold at once (default: maxConnections). */
  readonly maxConnectionsPerAddress?: number;
  /** Connections a host may open at once before the rate applies. */
  readonly connectionBurst: number;
  /** Sustained connections per minute per host. */
  readonly connectionsPerMinute: number;
  readonly now?: () => number;
}

/** A slot taken by one socket. */
export interface GateTicket {
  readonly host: string;
  /** The socket sent its CONNECT: from now on it cannot be displaced by a newer socket. */
  connectReceived(): void;
  /** The socket closed (idempotent). */
  release(): void;
}

export interface AdmitOptions {
  /** false skips the per-host rate (the connection still counts against the caps). */
  readonly rateLimited?: boolean;
  /** Called when a newer socket takes this one's place before it sent CONNECT: close it. */
  readonly evict?: () => void;
}

export type AdmitResult =
  | { readonly ok: true; readonly ticket: GateTicket; readonly evicted: number }
  | { readonly ok: false; readonly refusal: GateRefusal };

interface HostSlots {
  open: number;
  /** Tickets without a CONNECT yet, oldest first. */
  readonly pending: Set<Ticket>;
}

interface Ticket extends GateTicket {
  readonly evict: (() => void) | undefined;
}

const MAX_TRACKED_ADDRESSES = 10_000;

export class ConnectionGate {
  readonly #options: Required<Omit<ConnectionGateOptions, 'now'>>;
  readonly #buckets: KeyedTokenBuckets;
  readonly #hosts = new Map<string, HostSlots>();
  readonly #pending = new Set<Ticket>();
  #open = 0;

  constructor(options: ConnectionGateOptions) {
    const resolved = { ...options, maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? options.maxConnections };
    for (const key of ['maxConnections', 'maxConnectionsPerAddress', 'connectionBurst', 'connectionsPerMinute'] as const) {
      const v = resolved[key];
      if (!Number.isFinite(v) || v < 1) throw new RangeError(`ConnectionGate: ${key} must be a number >= 1, given ${String(v)}`);
    }
    this.#options = resolved;
    this.#buckets = new KeyedTokenBuckets({
      ratePerSecond: options.connectionsPerMinute / 60,
      burst: options.connectionBurst,
      now: options.now ?? Date.now,
      maxKeys: MAX_TRACKED_ADDRESSES,
    });
  }

  /** Open connections admitted and not yet released. */
  get open(): number {
    return this.#open;
  }

  /** Open connections of the host `address` belongs to. */
  openFrom(address: string | undefined): number {
    return this.#hosts.get(hostKey(address))?.open ?? 0;
  }

  /** Takes a slot for a new socket from `address` (displacing a silent one if a cap is reached), or says why not. */
  admit(address: string | undefined, options: AdmitOptions = {}): AdmitResult {
    const host = hostKey(address);
    const slots = this.#hosts.get(host);
    // Plan first, so a refusal has no side effects: at a cap, the oldest socket still without CONNECT makes room.
    const displaced = new Set<Ticket>();
    if ((slots?.open ?? 0) >= this.#options.maxConnectionsPerAddress) {
      const oldest = first(slots?.pending);
      if (!oldest) return { ok: false, refusal: 'too_many_from_address' };
      displaced.add(oldest);
    }
    if (this.#open - displaced.size >= this.#options.maxConnections) {
      const oldest = firstExcept(this.#pending, displaced);
      if (!oldest) return { ok: false, refusal: 'too_many_connections' };
      displaced.add(oldest);
    }
    if (options.rateLimited !== false && !this.#takeToken(host)) return { ok: false, refusal: 'connection_rate_limited' };
    for (const ticket of displaced) {
      ticket.release();
      ticket.evict?.();
    }
    return { ok: true, ticket: this.#issue(host, options.evict), evicted: displaced.size };
  }

  #issue(host: string, evict: (() => void) | undefined): Ticket {
    let slots = this.#hosts.get(host);
    if (!slots) {
      slots = { open: 0, pending: new Set() };
      this.#hosts.set(host, slots);
    }
    const hostSlots = slots;
    let pending = true;
    let released = false;
    const ticket: Ticket = {
      host,
      evict,
      connectReceived: () => {
        if (!pending) return;
        pending = false;
        hostSlots.pending.delete(ticket);
        this.#pending.delete(ticket);
      },
      release: () => {
        if (released) return;
        released = true;
        ticket.connectReceived();
        hostSlots.open -= 1;
        this.#open -= 1;
        if (hostSlots.open === 0) this.#hosts.delete(host);
      },
    };
    hostSlots.open += 1;
    hostSlots.pending.add(ticket);
    this.#pending.add(ticket);
    this.#open += 1;
    return ticket;
  }

  #takeToken(host: string): boolean {
    return this.#buckets.take(host).ok;
  }
}

function first<T>(set: ReadonlySet<T> | undefined): T | undefined {
  if (!set) return undefined;
  for (const value of set) return value;
  return undefined;
}

function firstExcept<T>(set: ReadonlySet<T>, except: ReadonlySet<T>): T | undefined {
  for (const value of set) if (!except.has(value)) return value;
  return undefined;
}

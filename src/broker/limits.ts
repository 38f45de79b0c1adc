/**
 * Limits that keep a misbehaving client from exhausting the gateway's memory (issue 4 item 2):
 *
 * - ConnectionGate: at most `maxConnections` sockets across every listener, and per source address a token bucket
 *   of `connectionBurst` connections refilled at `connectionsPerMinute`; refused sockets are closed before any MQTT
 *   (or TLS, or WebSocket) work is done for them.
 * - PacketSizeGuard: reads the MQTT fixed header of every packet (MQTT 3.1.1 §2.2.3, remaining length) as bytes
 *   arrive and fails the stream as soon as a packet declares more than `maxPacketBytes`, so a 256 MB PUBLISH is
 *   refused after its first five bytes instead of being buffered by the parser (mqtt-packet has no size cap). MQTT
 *   3.1.1 has no way to tell the client why; closing the connection is what Mosquitto does for `max_packet_size`.
 */
import { Duplex } from 'node:stream';
import { z } from 'zod';
import { KeyedTokenBuckets } from '../util/token-bucket.js';

/** The broker's limits; also the `mqtt.limits` section of the gateway config. */
export const BrokerLimitsSchema = z.strictObject({
  /** A socket that has not sent CONNECT by then is closed (aedes `connectTimeout`). */
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
  /** Packets buffered before CONNACK (aedes `queueLimit`). */
  queueLimit: z.number().int().min(1).max(100_000).default(42),
  maxClientIdLength: z.number().int().min(1).max(65_535).default(23),
  /** Simultaneous connections over every listener; further ones are closed at once. */
  maxConnections: z.number().int().min(1).max(1_000_000).default(1000),
  /** A PUBLISH with a larger payload is acknowledged and dropped (not delivered, not stored). */
  maxPayloadBytes: z.number().int().min(16).max(256 * 1024 * 1024).default(256 * 1024),
  /** A packet declaring a larger remaining length closes its connection before it is buffered; default payload + 64 KiB. */
  maxPacketBytes: z.number().int().min(64).max(268_435_455).optional(),
  /** QoS 1/2 PUBLISHes of one client waiting for their acknowledgement (ingest commit); beyond, the client is closed. */
  maxInflightPerClient: z.number().int().min(1).max(65_535).default(1000),
  /** Per source address: connections at once, then `connectionsPerMinute` (token bucket). */
  connectionBurst: z.number().int().min(1).max(1_000_000).default(20),
  connectionsPerMinute: z.number().min(1).max(1_000_000).default(120),
  /** Loopback clients (the gateway's own tools, a zigbee2mqtt on the same Pi) skip the per-address rate. */
  rateLimitLoopback: z.boolean().default(false),
  /** A client whose socket stays full this long is disconnected (aedes `drainTimeout`). */
  drainTimeoutMs: z.number().int().min(0).max(600_000).default(60_000),
  /** Seconds between two lines per error reason. */
  errorLogIntervalMs: z.number().int().min(0).max(3_600_000).default(10_000),
});

export type GateRefusal = 'too_many_connections' | 'connection_rate_limited';

export interface ConnectionGateOptions {
  readonly maxConnections: number;
  /** Connections a source address may open at once before the rate applies. */
  readonly connectionBurst: number;
  /** Sustained connections per minute per source address. */
  readonly connectionsPerMinute: number;
  readonly now?: () => number;
}

const MAX_TRACKED_ADDRESSES = 10_000;

export class ConnectionGate {
  readonly #options: ConnectionGateOptions;
  readonly #buckets: KeyedTokenBuckets;
  #open = 0;

  constructor(options: ConnectionGateOptions) {
    for (const key of ['maxConnections', 'connectionBurst', 'connectionsPerMinute'] as const) {
      const v = options[key];
      if (!Number.isFinite(v) || v < 1) throw new RangeError(`ConnectionGate: ${key} must be a number >= 1, given ${String(v)}`);
    }
    this.#options = options;
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

  /**
   * Takes a slot for a new connection from `address`, or says why not; `rateLimited: false` skips the per-address
   * rate (the connection still counts against maxConnections). Call `release()` when it closes.
   */
  admit(address: string | undefined, rateLimited = true): GateRefusal | undefined {
    if (this.#open >= this.#options.maxConnections) return 'too_many_connections';
    if (rateLimited && !this.#buckets.take(address ?? 'unknown').ok) return 'connection_rate_limited';
    this.#open += 1;
    return undefined;
  }

  release(): void {
    this.#open = Math.max(0, this.#open - 1);
  }
}

/** Scans MQTT fixed headers across chunk boundaries; `feed` returns the first oversized declared length, if any. */
export class PacketSizeScanner {
  readonly #max: number;
  /** Bytes of the current packet's body still to skip. */
  #skip = 0;
  /** 0: expecting a header byte; 1–4: reading remaining-length byte n. */
  #lengthByte = 0;
  #length = 0;
  #multiplier = 1;

  constructor(maxPacketBytes: number) {
    this.#max = maxPacketBytes;
  }

  feed(chunk: Buffer): number | 'malformed' | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i] ?? 0;
      i += 1;
      if (this.#lengthByte === 0) {
        this.#lengthByte = 1;
        this.#length = 0;
        this.#multiplier = 1;
        continue;
      }
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      if (byte & 0x80) {
        if (this.#lengthByte === 4) return 'malformed'; // §2.2.3: at most four bytes
        this.#lengthByte += 1;
        continue;
      }
      if (this.#length > this.#max) return this.#length;
      this.#skip = this.#length;
      this.#lengthByte = 0;
    }
    return undefined;
  }
}

export class PacketTooLargeError extends Error {
  readonly declaredBytes: number;
  constructor(declared: number, max: number) {
    super(`packet too large: declares ${declared} bytes, the limit is ${max}`);
    this.name = 'PacketTooLargeError';
    this.declaredBytes = declared;
  }
}

export interface GuardedConnectionOptions {
  readonly maxPacketBytes: number;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

/**
 * The connection aedes reads from: `inner`'s bytes pass through unchanged (with backpressure) after the scanner has
 * seen them; writes go straight to `inner`. Destroying either side destroys both.
 */
export class GuardedConnection extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly #inner: Duplex;

  constructor(inner: Duplex, options: GuardedConnectionOptions) {
    super({ allowHalfOpen: false });
    this.#inner = inner;
    this.remoteAddress = options.remoteAddress;
    this.remotePort = options.remotePort;
    const scanner = new PacketSizeScanner(options.maxPacketBytes);
    inner.on('data', (chunk: Buffer) => {
      const verdict = scanner.feed(chunk);
      if (verdict === 'malformed') this.destroy(new Error('Invalid protocol: remaining length longer than four bytes'));
      else if (verdict !== undefined) this.destroy(new PacketTooLargeError(verdict, options.maxPacketBytes));
      else if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => {
      if (!this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    this.#inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#inner.write(chunk)) callback();
    else this.#inner.once('drain', () => callback());
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#inner.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = this.#inner.write(chunk);
    this.#inner.uncork();
    if (ok) callback();
    else this.#inner.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end(() => callback());
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy();
    callback(err);
  }
}

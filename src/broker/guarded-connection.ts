/**
 * The connection aedes reads from: every byte of the listener's stream passes the PacketScanner (packet-scan.ts)
 * before aedes sees it, so an oversized packet or an ill-formed string closes the connection before the parser acts
 * on it. Errors carry a stable `code` (classifyBrokerError counts them by it).
 */
import { Duplex } from 'node:stream';
import { PacketScanner, type ScanVerdict } from './packet-scan.js';

export class PacketTooLargeError extends Error {
  readonly code = 'MQTT_PACKET_TOO_LARGE';
  readonly declaredBytes: number;
  constructor(declared: number, max: number) {
    super(`packet too large: declares ${declared} bytes, the limit is ${max}`);
    this.name = 'PacketTooLargeError';
    this.declaredBytes = declared;
  }
}

/** A string field that is not well-formed UTF-8 or holds U+0000: the connection is closed (MQTT-1.5.3-1/-2). */
export class InvalidStringError extends Error {
  readonly code = 'MQTT_INVALID_STRING';
  constructor(field: string, problem: string) {
    super(`Invalid protocol: ${field} is ${problem}`);
    this.name = 'InvalidStringError';
  }
}

export class MalformedLengthError extends Error {
  readonly code = 'MQTT_MALFORMED_LENGTH';
  constructor() {
    super('Invalid protocol: remaining length longer than four bytes');
    this.name = 'MalformedLengthError';
  }
}

function verdictError(verdict: ScanVerdict, maxPacketBytes: number): Error {
  if (verdict.kind === 'too_large') return new PacketTooLargeError(verdict.declared, maxPacketBytes);
  if (verdict.kind === 'bad_string') return new InvalidStringError(verdict.field, verdict.problem);
  return new MalformedLengthError();
}

export interface GuardedConnectionOptions {
  readonly maxPacketBytes: number;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

/**
 * `inner`'s bytes pass through unchanged (with backpressure) after the scanner has seen them; writes go straight to
 * `inner`. Destroying either side destroys both.
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
    const scanner = new PacketScanner(options.maxPacketBytes);
    inner.on('data', (chunk: Buffer) => {
      const verdict = scanner.feed(chunk);
      if (verdict !== undefined) this.destroy(verdictError(verdict, options.maxPacketBytes));
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

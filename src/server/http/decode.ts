/**
 * From body bytes to a JSON value with bounded memory (docs/protocol.md §Limits): inflate against the endpoint's cap,
 * refuse what is not UTF-8 (RFC 8259 §8.1), scan depth and value count before JSON.parse (json-scan.ts), parse.
 * Inflation is the only asynchronous step, so it is the only place where many large bodies could be held at once:
 * DecodeSlots bounds how many gzip bodies are inflated and parsed at the same time, the others wait in a bounded
 * queue (beyond it: 503 SERVER_BUSY).
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from '../../errors.js';
import { decodeGzip } from '../../protocol/index.js';
import { scanJson, type JsonLimits } from './json-scan.js';

/** What an endpoint accepts as a body. */
export interface BodyPolicy {
  /** Bytes on the wire (compressed or not). */
  readonly maxRawBytes: number;
  /** Whether `Content-Encoding: gzip` is accepted at all. */
  readonly gzip: boolean;
  /** Bytes after inflation. */
  readonly maxInflatedBytes: number;
  readonly json: JsonLimits;
}

export class DecodeSlots {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    readonly limit: number,
    readonly queueLimit: number,
  ) {
    if (!(limit >= 1)) throw new RangeError(`DecodeSlots: limit must be >= 1, given ${limit}`);
    if (!(queueLimit >= 0)) throw new RangeError(`DecodeSlots: queueLimit must be >= 0, given ${queueLimit}`);
  }

  /** Waits for a slot; resolves with its release function. Rejects with SERVER_BUSY when the queue is full. */
  acquire(): Promise<() => void> {
    if (this.active < this.limit) {
      this.active += 1;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.queueLimit) {
      return Promise.reject(
        new ProtocolError('SERVER_BUSY', 'too many compressed bodies waiting to be decoded; retry shortly', {
          retryAfterSeconds: 1,
          reason: 'decode_queue',
        }),
      );
    }
    return new Promise((resolve) => this.queue.push(() => resolve(this.releaser())));
  }

  inUse(): number {
    return this.active;
  }

  waiting(): number {
    return this.queue.length;
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.active -= 1;
    };
  }
}

/** Inflates (when gzip) and parses a body under `policy`; every refusal is a ProtocolError with a reason. */
export async function decodeJsonBody(raw: Buffer, gzip: boolean, policy: BodyPolicy): Promise<unknown> {
  const bytes = gzip ? await decodeGzip(raw, policy.maxInflatedBytes) : raw;
  if (!isUtf8(bytes)) {
    throw new ProtocolError('BAD_REQUEST', 'body is not valid UTF-8 (RFC 8259 §8.1)', { reason: 'utf8' });
  }
  const scan = scanJson(bytes, policy.json);
  if (!scan.ok) {
    throw scan.reason === 'depth'
      ? new ProtocolError('BAD_REQUEST', `JSON nested deeper than ${policy.json.maxDepth} levels`, { reason: 'json_depth' })
      : new ProtocolError('PAYLOAD_TOO_LARGE', `JSON body has more than ${policy.json.maxValues} values`, {
          reason: 'json_values',
        });
  }
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('BAD_REQUEST', `malformed JSON: ${(err as Error).message.slice(0, 200)}`, { reason: 'json' });
  }
}

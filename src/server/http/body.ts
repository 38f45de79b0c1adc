/**
 * Reading a request body into memory, bounded twice: per request (the endpoint's cap, 413 PAYLOAD_TOO_LARGE) and
 * for the whole server (BodyBudget: all bodies held at once, 503 SERVER_BUSY), so many slow or large uploads at once
 * cannot add up to more memory than the budget. Bytes are reserved as they arrive (a declared Content-Length is
 * reserved up front) and released when the request is done with them.
 */
import type { IncomingMessage } from 'node:http';
import { ProtocolError } from '../../errors.js';

export class BodyBudget {
  private used = 0;
  constructor(readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError(`BodyBudget: capacity must be > 0 bytes, given ${capacity}`);
  }

  /** Takes `bytes` from the budget; false (nothing taken) when that would exceed it. */
  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.capacity) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  /** Bytes held now. */
  inUse(): number {
    return this.used;
  }
}

/** A body read into memory; `release()` gives its bytes back to the budget (idempotent). */
export interface HeldBody {
  readonly bytes: Buffer;
  release(): void;
}

function busy(): ProtocolError {
  return new ProtocolError('SERVER_BUSY', 'too many request bodies in memory; retry shortly', {
    retryAfterSeconds: 1,
    reason: 'body_memory',
  });
}

/**
 * Reads the whole body, refusing more than `maxBytes` (413) or more than the budget has left (503). On refusal
 * reading stops at once and nothing more is buffered; the caller answers with `Connection: close`.
 */
export function readBody(req: IncomingMessage, maxBytes: number, budget: BodyBudget): Promise<HeldBody> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(
      new ProtocolError('PAYLOAD_TOO_LARGE', `body of ${declared} bytes exceeds ${maxBytes} bytes`, { reason: 'body' }),
    );
  }
  let held = 0;
  const release = (): void => {
    budget.give(held);
    held = 0;
  };
  // Reserve a declared length up front: a refusal then costs no reading at all.
  if (Number.isFinite(declared) && declared > 0) {
    if (!budget.tryTake(declared)) return Promise.reject(busy());
    held = declared;
  }
  return new Promise((resolve, reject) => {
    // The client may have gone while an earlier step awaited the store (its 'close' is past): refuse now, never hang.
    if (req.destroyed) {
      release();
      reject(new ProtocolError('BAD_REQUEST', 'request closed before its body was read', { reason: 'body_read' }));
      return;
    }
    // With a declared length the body is copied into one buffer as it arrives (the chunks are garbage at once);
    // only a chunked body keeps its chunks until the end.
    const into = Number.isFinite(declared) && declared > 0 ? Buffer.allocUnsafe(declared) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const fail = (err: ProtocolError): void => {
      cleanup();
      req.pause();
      release();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        fail(new ProtocolError('PAYLOAD_TOO_LARGE', `body exceeds ${maxBytes} bytes`, { reason: 'body' }));
        return;
      }
      if (size > held) {
        if (!budget.tryTake(size - held)) {
          fail(busy());
          return;
        }
        held = size;
      }
      if (into !== undefined && size <= into.length) chunk.copy(into, size - chunk.length);
      else chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      let bytes: Buffer;
      if (into !== undefined && chunks.length === 0) bytes = into.subarray(0, size);
      else bytes = chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, size);
      resolve({ bytes, release });
    };
    const onError = (err: Error): void => {
      fail(new ProtocolError('BAD_REQUEST', `request body could not be read: ${err.message}`, { cause: err, reason: 'body_read' }));
    };
    const onClose = (): void => {
      fail(new ProtocolError('BAD_REQUEST', 'request closed before its body was complete', { reason: 'body_read' }));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * Request body reading with a hard cap, and replies: JSON text, gzipped when the client accepts it and the body is
 * over 1 KB (seed §Compression), signed when the request was signed (design.md §HMAC: over the body bytes as sent,
 * i.e. after gzip, bound to the request nonce).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '../../errors.js';
import { encodeBody, GZIP_THRESHOLD_BYTES, signResponse, type ErrorBody } from '../../protocol/index.js';
import { BodyError, readBody as readBodyCapped } from '../../util/http-body.js';

export interface Reply {
  readonly status: number;
  /** JSON text of the body. */
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface SigningContext {
  readonly secret: string;
  readonly nonce: string;
}

export function jsonReply(status: number, value: unknown): Reply {
  return { status, body: JSON.stringify(value) };
}

export function errorReply(err: ProtocolError): Reply {
  const body: ErrorBody = { type: 'error', code: err.code, message: err.message.slice(0, 2000) };
  if (err.retryAfterSeconds !== undefined) body.retry_after = err.retryAfterSeconds;
  const headers: Record<string, string> = {};
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterSeconds)));
  return { status: err.status, body: JSON.stringify(body), headers };
}

/**
 * Reads the whole body, refusing more than `maxBytes` (413 PAYLOAD_TOO_LARGE). On overflow reading stops at once
 * and nothing more is buffered; the caller answers with `Connection: close`. (The reading is util/http-body.ts,
 * shared with the daemon's control listener.)
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  try {
    return await readBodyCapped(req, maxBytes);
  } catch (err) {
    if (err instanceof BodyError) throw new ProtocolError(err.code, err.message, { cause: err.cause });
    throw err;
  }
}

export interface SendOptions {
  readonly gzip: boolean;
  readonly signing: SigningContext | undefined;
  readonly nowSeconds: number;
  /** Ask the client to close the connection (server closing, or an unread request body). */
  readonly close: boolean;
}

/** Writes a reply; returns the number of body bytes sent. */
export async function sendReply(res: ServerResponse, reply: Reply, options: SendOptions): Promise<number> {
  const raw = Buffer.from(reply.body, 'utf8');
  const encoded = options.gzip ? await encodeBody(raw) : { bytes: raw, gzipped: false };
  // Lean headers (they are paid on every exchange): no charset (RFC 8259 §11: application/json has none, it is
  // UTF-8), and Vary only when the representation can depend on Accept-Encoding, i.e. above the gzip threshold.
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': encoded.bytes.length,
    'cache-control': 'no-store',
    ...reply.headers,
  };
  if (raw.length > GZIP_THRESHOLD_BYTES) headers.vary = 'accept-encoding';
  if (encoded.gzipped) headers['content-encoding'] = 'gzip';
  if (options.close) headers.connection = 'close';
  if (options.signing !== undefined) {
    Object.assign(
      headers,
      signResponse({
        secret: options.signing.secret,
        status: reply.status,
        requestNonce: options.signing.nonce,
        body: encoded.bytes,
        timestampSeconds: options.nowSeconds,
      }),
    );
  }
  if (res.destroyed) return 0;
  res.writeHead(reply.status, headers);
  res.end(encoded.bytes);
  return encoded.bytes.length;
}

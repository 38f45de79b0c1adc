/**
 * Replies: JSON text, gzipped when the client accepts it and the body is over 1 KB (seed §Compression), signed when
 * the request was signed (docs/protocol.md §HMAC: over the body bytes as sent, after gzip, bound to the request nonce),
 * with a `Date` header from the server's own clock (the one its server_time comes from). Request bodies: body.ts.
 */
import type { ServerResponse } from 'node:http';
import { ProtocolError } from '../../errors.js';
import { encodeBody, GZIP_THRESHOLD_BYTES, signResponse, type ErrorBody } from '../../protocol/index.js';

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
  const body: ErrorBody = { type: 'error', code: err.code, message: err.message.slice(0, 2000).toWellFormed() };
  if (err.retryAfterSeconds !== undefined) body.retry_after = err.retryAfterSeconds;
  const headers: Record<string, string> = {};
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterSeconds)));
  return { status: err.status, body: JSON.stringify(body), headers };
}

export interface SendOptions {
  readonly gzip: boolean;
  readonly signing: SigningContext | undefined;
  /** The server's clock, epoch ms: the response signature's timestamp and the `Date` header. */
  readonly nowMs: number;
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
    // RFC 9110 §6.6.1, from the clock server_time comes from: clients check server_time against it (sync/clock.ts).
    date: new Date(options.nowMs).toUTCString(),
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
        timestampSeconds: Math.floor(options.nowMs / 1000),
      }),
    );
  }
  if (res.destroyed) return 0;
  res.writeHead(reply.status, headers);
  res.end(encoded.bytes);
  return encoded.bytes.length;
}

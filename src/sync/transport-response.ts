/**
 * What the sync transport (transport.ts) makes of an exchange's outcome, as functions of the response alone: its
 * signature checked against the request's nonce (docs/protocol.md §HMAC), its body gunzipped with a cap and parsed,
 * an error answer turned into a SyncHttpError with the server's code and Retry-After (seed §Error Codes), and a
 * request that got no answer into GatewayError TRANSPORT / TIMEOUT / BAD_RESPONSE (or the TLS check's own error).
 */
import { GatewayError, HTTP_STATUS_BY_CODE, SyncHttpError, type ErrorCode } from '../errors.js';
import { contentEncodingOf, decodeGzip, ErrorBodySchema, HEADER_SIGNATURE, HEADER_TIMESTAMP, verifyResponse } from '../protocol/index.js';
import { HttpPoolError } from './http-pool.js';

/** A response as the pool returned it: status, headers, the raw (possibly gzipped) body. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

export function header(headers: RawResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * docs/protocol.md §HMAC: a response is used only if its signature is good; a 2xx must be signed — unless the server
 * profile says the server signs nothing (`acceptUnsigned`: logged at start, shown in `status`). A signature that
 * is there is always checked.
 */
export function verifyResponseSignature(response: RawResponse, nonce: string, secret: string, acceptUnsigned: boolean): void {
  const signature = header(response.headers, HEADER_SIGNATURE);
  const ok2xx = response.status >= 200 && response.status < 300;
  if (signature === undefined && (!ok2xx || acceptUnsigned)) return; // an unsigned error is still an error
  const check = verifyResponse({
    secret,
    status: response.status,
    requestNonce: nonce,
    body: response.body,
    headers: { timestamp: header(response.headers, HEADER_TIMESTAMP), signature },
  });
  if (!check.ok) {
    throw new GatewayError('BAD_SIGNATURE', `response signature ${check.reason} (HTTP ${response.status}); response discarded`, { status: 401 });
  }
}

/** The body as JSON (undefined when empty, or when an error answer is not JSON), inflated up to `maxBytes`. */
export async function decodeResponse(response: RawResponse, maxBytes: number): Promise<unknown> {
  let body = response.body;
  const encoding = contentEncodingOf(response.headers['content-encoding']);
  if (encoding === 'unsupported') throw new GatewayError('BAD_RESPONSE', 'response has an unsupported Content-Encoding');
  if (encoding === 'gzip') {
    try {
      body = await decodeGzip(body, maxBytes);
    } catch (err) {
      throw new GatewayError('BAD_RESPONSE', `response gzip: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    if (response.status >= 400) return undefined;
    throw new GatewayError('BAD_RESPONSE', `response is not JSON (HTTP ${response.status})`, { cause: err });
  }
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(HTTP_STATUS_BY_CODE, code);
}

/** An HTTP date (RFC 9110 §5.6.7) as epoch ms; undefined when absent or unreadable. */
export function httpDateMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : at;
}

/** Retry-After: delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/** A non-2xx answer as a typed error: the protocol's error body's code, or one the status implies. */
export function toHttpError(response: RawResponse, json: unknown, gzipRefusal = false): SyncHttpError {
  const parsed = ErrorBodySchema.safeParse(json);
  const retryAfter = parseRetryAfter(header(response.headers, 'retry-after')) ?? (parsed.success ? parsed.data.retry_after : undefined);
  const fallback: ErrorCode = response.status === 429 ? 'RATE_LIMITED' : response.status === 401 ? 'UNAUTHORIZED' : 'BAD_RESPONSE';
  if (!parsed.success) {
    const message = `HTTP ${response.status} without a valid error body${describeForeignBody(json)}`;
    return new SyncHttpError(fallback, message, response.status, retryAfter, gzipRefusal);
  }
  const code = isErrorCode(parsed.data.code) ? parsed.data.code : fallback;
  const message = code === parsed.data.code ? parsed.data.message : `${parsed.data.code}: ${parsed.data.message}`;
  return new SyncHttpError(code, message, response.status, retryAfter, gzipRefusal);
}

/** `: "detail"` of a FastAPI-style error body (FunkyGibbon v1), capped; else nothing. */
function describeForeignBody(json: unknown): string {
  const detail = typeof json === 'object' && json !== null && 'detail' in json ? json.detail : undefined;
  return typeof detail === 'string' ? `: ${JSON.stringify(detail.slice(0, 200))}` : '';
}

/** The first GatewayError in an error's cause chain (the pool wraps what a TLS check returned). */
function gatewayCause(err: unknown): GatewayError | undefined {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 5; e = e.cause, i++) {
    if (e instanceof GatewayError) return e;
  }
  return undefined;
}

/** A request that got no answer (the pool's error) as a typed error. */
export function toTransportError(err: unknown, method: string, path: string): GatewayError {
  const typed = gatewayCause(err);
  if (typed !== undefined) return typed;
  const what = `${method} ${path}`;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof HttpPoolError && err.code === 'TIMEOUT') return new GatewayError('TIMEOUT', `${what}: ${message}`, { cause: err });
  if (err instanceof HttpPoolError && err.code === 'TOO_LARGE') return new GatewayError('BAD_RESPONSE', `${what}: ${message}`, { cause: err });
  return new GatewayError('TRANSPORT', `${what}: ${message}`, { cause: err });
}

/** Bytes of the status line and headers as received (TransportStats.bytesReceived). */
export function estimateResponseHeaderBytes(headers: RawResponse['headers']): number {
  let n = 'HTTP/1.1 200 OK\r\n'.length + 2;
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value ?? '']) n += name.length + v.length + 4;
  }
  return n;
}

/**
 * HMAC signing of sync messages (seed §Data Integrity; the scheme written byte by byte in docs/protocol.md §HMAC).
 * HMAC-SHA256 keyed by the client secret over a canonical string that binds the method, path, timestamp, nonce, client
 * id and the SHA-256 of the body bytes exactly as sent (after gzip, if any). Responses are signed too, bound to the
 * request's nonce so a recorded response cannot be replayed to another request.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_VERSION = 'v1';
export const HEADER_CLIENT_ID = 'x-inbetweenies-client-id';
export const HEADER_TIMESTAMP = 'x-inbetweenies-timestamp';
export const HEADER_NONCE = 'x-inbetweenies-nonce';
export const HEADER_SIGNATURE = 'x-inbetweenies-signature';
/** docs/protocol.md §HMAC: ±300 s. */
export const DEFAULT_SKEW_WINDOW_SECONDS = 300;

const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;

export interface RequestSignatureInput {
  readonly secret: string;
  readonly method: string;
  /** Path with query string, exactly as on the request line. */
  readonly path: string;
  readonly clientId: string;
  readonly body: Uint8Array;
  readonly timestampSeconds: number;
  readonly nonce: string;
}

export interface ResponseSignatureInput {
  readonly secret: string;
  readonly status: number;
  readonly requestNonce: string;
  readonly body: Uint8Array;
  readonly timestampSeconds: number;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The canonical request string. `timestampText` is the x-inbetweenies-timestamp header exactly as sent (a verifier
 * passes the header text, so `0001795603879` is signed as such, not as its numeric value); it defaults to the
 * decimal of `timestampSeconds`, which is what a signer sends.
 */
export function canonicalRequest(input: Omit<RequestSignatureInput, 'secret'>, timestampText = String(input.timestampSeconds)): string {
  return [
    'IB1-HMAC-SHA256',
    input.method.toUpperCase(),
    input.path,
    timestampText,
    input.nonce,
    input.clientId,
    sha256Hex(input.body),
  ].join('\n');
}

/** The canonical response string; `timestampText` as in canonicalRequest. */
export function canonicalResponse(input: Omit<ResponseSignatureInput, 'secret'>, timestampText = String(input.timestampSeconds)): string {
  return [
    'IB1-HMAC-SHA256-RESPONSE',
    String(input.status),
    input.requestNonce,
    timestampText,
    sha256Hex(input.body),
  ].join('\n');
}

function mac(secret: string, text: string): string {
  return `${SIGNATURE_VERSION}=${createHmac('sha256', secret).update(text, 'utf8').digest('hex')}`;
}

export function signRequest(input: RequestSignatureInput): Record<string, string> {
  return {
    [HEADER_CLIENT_ID]: input.clientId,
    [HEADER_TIMESTAMP]: String(input.timestampSeconds),
    [HEADER_NONCE]: input.nonce,
    [HEADER_SIGNATURE]: mac(input.secret, canonicalRequest(input)),
  };
}

export function signResponse(input: ResponseSignatureInput): Record<string, string> {
  return {
    [HEADER_TIMESTAMP]: String(input.timestampSeconds),
    [HEADER_SIGNATURE]: mac(input.secret, canonicalResponse(input)),
  };
}

/** Constant-time comparison of two signature strings. */
export function signaturesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  if (left.length !== right.length) {
    timingSafeEqual(left, left);
    return false;
  }
  return timingSafeEqual(left, right);
}

export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

export interface SignedHeaders {
  readonly timestamp: string | undefined;
  readonly nonce: string | undefined;
  readonly signature: string | undefined;
}

/** Checks form, freshness and MAC of a signed request. Replay (nonce reuse) is the caller's job: it keeps state. */
export function verifyRequest(
  input: Omit<RequestSignatureInput, 'timestampSeconds' | 'nonce'> & {
    readonly headers: SignedHeaders;
    readonly nowSeconds: number;
    readonly windowSeconds?: number;
  },
): SignatureCheck {
  const { timestamp, nonce, signature } = input.headers;
  if (timestamp === undefined || nonce === undefined || signature === undefined) return { ok: false, reason: 'missing' };
  if (!/^\d{1,12}$/.test(timestamp) || !NONCE_RE.test(nonce) || !signature.startsWith(`${SIGNATURE_VERSION}=`)) {
    return { ok: false, reason: 'malformed' };
  }
  const ts = Number(timestamp);
  if (Math.abs(input.nowSeconds - ts) > (input.windowSeconds ?? DEFAULT_SKEW_WINDOW_SECONDS)) {
    return { ok: false, reason: 'stale' };
  }
  const expected = mac(input.secret, canonicalRequest({ ...input, timestampSeconds: ts, nonce }, timestamp));
  return signaturesEqual(expected, signature) ? { ok: true } : { ok: false, reason: 'mismatch' };
}

/** Checks a signed response against the nonce of the request it answers. */
export function verifyResponse(
  input: Omit<ResponseSignatureInput, 'timestampSeconds'> & {
    readonly headers: { timestamp: string | undefined; signature: string | undefined };
  },
): SignatureCheck {
  const { timestamp, signature } = input.headers;
  if (timestamp === undefined || signature === undefined) return { ok: false, reason: 'missing' };
  if (!/^\d{1,12}$/.test(timestamp) || !signature.startsWith(`${SIGNATURE_VERSION}=`)) {
    return { ok: false, reason: 'malformed' };
  }
  const expected = mac(input.secret, canonicalResponse({ ...input, timestampSeconds: Number(timestamp) }, timestamp));
  return signaturesEqual(expected, signature) ? { ok: true } : { ok: false, reason: 'mismatch' };
}

/**
 * HTTP transport of the sync client (keep-alive connections with connect, headers and body timeouts: http-pool.ts,
 * on node:http/https). Every request:
 * JSON body gzipped above 1 KB (seed §Compression), HMAC-signed when enabled (seed §Data Integrity, scheme in
 * protocol/hmac.ts), `Accept-Encoding: gzip`. Every response: signature verified against the request's nonce
 * (before it is used at all), gunzipped with a cap, validated with its zod schema. Errors are typed: SyncHttpError
 * for the server's error bodies, GatewayError TRANSPORT / TIMEOUT / BAD_RESPONSE / BAD_SIGNATURE / TLS_PIN_MISMATCH
 * for the rest (what a response means, and a failed request: transport-response.ts).
 *
 * HTTPS (seed §Data Integrity "TLS for transport encryption"): the server certificate is verified against the system
 * CAs or `caFile` (a private CA), and optionally its key is pinned (`pinSha256`: SHA-256 of the certificate's
 * SubjectPublicKeyInfo, base64 or hex); a connection to any other key fails closed with TLS_PIN_MISMATCH.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { z } from 'zod';
import { GatewayError, SyncHttpError } from '../errors.js';
import type { Logger } from '../log.js';
import { describeIssues, encodeBody, HEADER_CLIENT_ID, newNonce, signRequest } from '../protocol/index.js';
import { HttpPool } from './http-pool.js';
import { refusedGzip } from './peer-profile.js';
import { Ms, validateOptions } from './options.js';
import {
  decodeResponse,
  estimateResponseHeaderBytes,
  header,
  httpDateMs,
  toHttpError,
  toTransportError,
  verifyResponseSignature,
  type RawResponse,
} from './transport-response.js';

export { httpDateMs, parseRetryAfter } from './transport-response.js';

/** Base64 (44 characters, padded) or hex (64 characters) SHA-256. */
const PIN_RE = /^(?:[A-Za-z0-9+/]{43}=|[0-9a-fA-F]{64})$/;

export const TransportConfigSchema = z.object({
  serverUrl: z.url({ protocol: /^https?$/ }),
  clientId: z.string().min(1),
  /** Keys the HMAC; without one nothing is signed (a server that checks no signatures: FunkyGibbon v1). */
  clientSecret: z.string().min(1).optional(),
  hmac: z.boolean().default(true),
  connectTimeoutMs: Ms.default(5_000),
  headersTimeoutMs: Ms.default(15_000),
  bodyTimeoutMs: Ms.default(30_000),
  keepAliveTimeoutMs: Ms.default(30_000),
  connections: z.number().int().min(1).max(16).default(2),
  /** Cap on a response body, raw and inflated (default 16 MiB). */
  maxResponseBytes: z.number().int().positive().default(16 * 1024 * 1024),
  gzipThresholdBytes: z.number().int().nonnegative().default(1024),
  /** PEM file of the CA(s) that issued the server certificate, instead of the system CAs (https only). */
  caFile: z.string().min(1).optional(),
  /** Accepted SHA-256 pins of the server's public key (SPKI), base64 or hex (https only); none: no pinning. */
  pinSha256: z.array(z.string().regex(PIN_RE, 'expected a SHA-256 as 44 base64 or 64 hex characters')).max(16).optional(),
});
export type TransportConfig = z.input<typeof TransportConfigSchema>;

/**
 * The pin of a public key: base64 SHA-256 of its DER SubjectPublicKeyInfo (HPKP's pin-sha256; `openssl x509 -in
 * cert.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`).
 */
export function spkiPin(spkiDer: Uint8Array): string {
  return createHash('sha256').update(spkiDer).digest('base64');
}

/** A configured pin (base64 or hex) in base64. */
export function normalisePin(pin: string): string {
  return /^[0-9a-fA-F]{64}$/.test(pin) ? Buffer.from(pin, 'hex').toString('base64') : pin;
}

/** Whether a server URL names this machine (plain HTTP to it never leaves the host). */
export function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * What the transport asks of the server profile (peer.ts; docs/protocol.md §Compatibility): whether request bodies
 * may be gzipped, whether an unsigned 2xx may be used, and who to tell that the server refused a gzip body.
 */
export interface TransportPeer {
  gzip(): boolean;
  acceptUnsigned(): boolean;
  gzipRefused(status: number): void;
}

const TRUSTING_NOTHING: TransportPeer = { gzip: () => true, acceptUnsigned: () => false, gzipRefused: () => undefined };

export interface TransportOptions extends TransportConfig {
  readonly logger: Logger;
  /** The server profile's say (default: gzip, signed answers only). */
  readonly peer?: TransportPeer;
  /** Seconds for HMAC timestamps; the client passes the server-corrected clock so a skewed gateway still signs fresh. */
  readonly timestampSeconds?: () => number;
  /** Local wall clock, epoch ms (round-trip timing for the clock estimate). */
  readonly now?: () => number;
}

export interface CallSpec<T> {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: unknown;
  readonly schema: z.ZodType<T>;
  readonly bearer?: string;
  /**
   * false only for GET /api/v1/health: unauthenticated, so the server neither checks nor signs it (its only use is
   * reachability and a clock sample). Default true: signed request, verified response.
   */
  readonly signed?: boolean;
  /**
   * Headers and body timeout of this request instead of the transport's (a live wait is held by the server for up
   * to its `wait`: src/sync/live.ts gives it that plus a margin).
   */
  readonly timeoutMs?: number;
  /** Aborts the request at once (a held live wait when the daemon stops); the call rejects with TRANSPORT. */
  readonly signal?: AbortSignal;
  /** An unsigned 2xx is used for this request (probing whether the server is one that signs nothing). */
  readonly unsignedOk?: boolean;
}

export interface CallResult<T> {
  readonly value: T;
  readonly status: number;
  readonly sentAtMs: number;
  readonly receivedAtMs: number;
  /** The response's HTTP `Date` header (the server's clock, whole seconds) as epoch ms; undefined when absent. */
  readonly serverDateMs: number | undefined;
}

export interface TransportStats {
  bytesSent: number;
  bytesReceived: number;
  requests: number;
}

const EMPTY = Buffer.alloc(0);

export class SyncTransport {
  readonly config: z.output<typeof TransportConfigSchema>;
  readonly stats: TransportStats = { bytesSent: 0, bytesReceived: 0, requests: 0 };
  readonly #pool: HttpPool;
  readonly #log: Logger;
  readonly #timestampSeconds: () => number;
  readonly #now: () => number;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #peer: TransportPeer;

  constructor(options: TransportOptions) {
    const { logger, timestampSeconds, now, peer, ...config } = options;
    this.#peer = peer ?? TRUSTING_NOTHING;
    this.config = validateOptions(TransportConfigSchema, config, 'sync transport options');
    this.#log = logger.child({ module: 'sync-transport' });
    this.#now = now ?? Date.now;
    this.#timestampSeconds = timestampSeconds ?? (() => Math.floor(this.#now() / 1000));
    const url = new URL(this.config.serverUrl);
    this.#origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#pool = new HttpPool(this.#origin, {
      connections: this.config.connections,
      connectTimeoutMs: this.config.connectTimeoutMs,
      headersTimeoutMs: this.config.headersTimeoutMs,
      bodyTimeoutMs: this.config.bodyTimeoutMs,
      keepAliveTimeoutMs: this.config.keepAliveTimeoutMs,
      maxResponseBytes: this.config.maxResponseBytes,
      tls: tlsOptions(this.config, url),
    });
    if (url.protocol === 'http:' && !isLoopbackUrl(url)) {
      this.#log.warn(
        { serverUrl: this.#origin },
        'server URL is plain http to another host: requests, tokens and synced state cross the network unencrypted (use https)',
      );
    }
  }

  /**
   * One request/response exchange, fully checked. A gzipped request the server refused as such (a 415, or a 400 that
   * is not this protocol's error: FunkyGibbon v1) is told to the profile, which remembers it, and sent again plain once.
   */
  async call<T>(spec: CallSpec<T>): Promise<CallResult<T>> {
    const raw = spec.body === undefined ? EMPTY : Buffer.from(JSON.stringify(spec.body), 'utf8');
    const gzip = spec.body !== undefined && this.#peer.gzip();
    const encoded = gzip ? await encodeBody(raw, this.config.gzipThresholdBytes) : { bytes: raw, gzipped: false };
    try {
      return await this.#exchange(spec, encoded);
    } catch (err) {
      if (!encoded.gzipped || !(err instanceof SyncHttpError) || !err.gzipRefusal) throw err;
      this.#peer.gzipRefused(err.status ?? 0);
      this.#log.warn({ status: err.status, path: spec.path }, 'server refused a gzip body; sending plain bodies from now on');
      return this.#exchange(spec, { bytes: raw, gzipped: false });
    }
  }

  async #exchange<T>(spec: CallSpec<T>, encoded: { bytes: Buffer; gzipped: boolean }): Promise<CallResult<T>> {
    const path = `${this.#basePath}${spec.path}`;
    const nonce = newNonce();
    // Every header costs bytes on every exchange (a Pi on a metered link polls all day): no `accept` (the API only
    // speaks JSON), and on bearer requests no client-id header (below).
    const headers: Record<string, string> = { 'accept-encoding': 'gzip' };
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    if (encoded.gzipped) headers['content-encoding'] = 'gzip';
    if (spec.bearer !== undefined) headers.authorization = `Bearer ${spec.bearer}`;
    const secret = this.config.clientSecret;
    const signed = this.config.hmac && spec.signed !== false && secret !== undefined;
    if (signed) {
      Object.assign(headers, signRequest({
        secret,
        method: spec.method,
        path,
        clientId: this.config.clientId,
        body: encoded.bytes,
        timestampSeconds: Math.floor(this.#timestampSeconds()),
        nonce,
      }));
      // docs/protocol.md §HMAC: on sync endpoints the bearer token names the client (and the key), so the client-id
      // header is optional there; the canonical string still binds our client id.
      if (spec.bearer !== undefined) delete headers[HEADER_CLIENT_ID];
    }
    this.stats.requests += 1;
    this.stats.bytesSent += estimateRequestHeaderBytes(spec.method, path, headers, this.#origin, encoded.bytes.length) + encoded.bytes.length;
    const sentAtMs = this.#now();
    const response = await this.#send(spec.method, path, headers, encoded.bytes, spec.timeoutMs, spec.signal);
    const receivedAtMs = this.#now();
    this.stats.bytesReceived += estimateResponseHeaderBytes(response.headers) + response.body.length;
    if (signed) verifyResponseSignature(response, nonce, secret, spec.unsignedOk === true || this.#peer.acceptUnsigned());
    const json = await decodeResponse(response, this.config.maxResponseBytes);
    if (response.status < 200 || response.status >= 300) throw toHttpError(response, json, encoded.gzipped && refusedGzip(response.status, json));
    const parsed = spec.schema.safeParse(json);
    if (!parsed.success) {
      throw new GatewayError('BAD_RESPONSE', `${spec.method} ${spec.path}: response does not match its schema: ${describeIssues(parsed.error).join('; ')}`);
    }
    return { value: parsed.data, status: response.status, sentAtMs, receivedAtMs, serverDateMs: httpDateMs(header(response.headers, 'date')) };
  }

  async #send(method: string, path: string, headers: Record<string, string>, body: Buffer, timeoutMs?: number, signal?: AbortSignal): Promise<RawResponse> {
    const timeouts = timeoutMs === undefined ? {} : { headersTimeoutMs: timeoutMs, bodyTimeoutMs: timeoutMs };
    try {
      const res = await this.#pool.request({ method, path, headers, body, ...timeouts, ...(signal ? { signal } : {}) });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw toTransportError(err, method, path);
    }
  }

  /** Drains: waits for requests in flight, then closes the connections. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Aborts requests in flight and closes at once. */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }

  get log(): Logger {
    return this.#log;
  }
}

/** TLS options of the connector: a private CA and the key pin (docs/security.md §Sync server). */
function tlsOptions(config: z.output<typeof TransportConfigSchema>, url: URL): { ca?: Buffer; checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined } {
  if (url.protocol !== 'https:') {
    if (config.caFile !== undefined || config.pinSha256 !== undefined) {
      throw new GatewayError('CONFIG_INVALID', `server.caFile and server.pinSha256 need an https server URL, given ${url.origin}`);
    }
    return {};
  }
  const out: { ca?: Buffer; checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined } = {};
  if (config.caFile !== undefined) {
    try {
      out.ca = readFileSync(config.caFile);
    } catch (err) {
      throw new GatewayError('CONFIG_INVALID', `server.caFile: cannot read ${config.caFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  const pins = config.pinSha256?.map(normalisePin);
  if (pins !== undefined && pins.length > 0) {
    out.checkServerIdentity = (host, cert) => {
      const identity = checkServerIdentity(host, cert);
      if (identity !== undefined) return identity;
      // cert.pubkey is the bare key (an EC point, say), not the SPKI: take the SPKI from the certificate itself.
      const pin = spkiPin(new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' }));
      if (pins.includes(pin)) return undefined;
      return new GatewayError('TLS_PIN_MISMATCH', `server ${host} presented a key whose pin sha256/${pin} is not in server.pinSha256: connection refused`);
    };
  }
  return out;
}

function estimateRequestHeaderBytes(method: string, path: string, headers: Record<string, string>, origin: string, length: number): number {
  // request line + host + content-length + connection + each header line + blank line
  let n = `${method} ${path} HTTP/1.1\r\n`.length + `host: ${new URL(origin).host}\r\n`.length + 24 + 2;
  if (length > 0) n += `content-length: ${length}\r\n`.length;
  for (const [name, value] of Object.entries(headers)) n += name.length + value.length + 4;
  return n;
}

/**
 * Who may use the daemon's HTTP listener (docs/security.md §The HTTP listener). Checked before any route runs:
 *
 * - **Host**: a loopback name or address, the address the request arrived at (an IP literal), or a name in
 *   `http.allowedHosts`; anything else is 403 HOST_NOT_ALLOWED. A DNS-rebinding page (a name of the attacker's that
 *   turns into 127.0.0.1) sends its own name, so it can never read the status page or trigger a sync.
 * - **Token** (`http.token`; required to bind anywhere but loopback): every request needs `Authorization: Bearer
 *   <token>`. A browser opens the page once with `?token=<token>`, which sets an HttpOnly, SameSite=Strict cookie (a
 *   value derived from the token, not the token) and redirects to the page without it; the cookie is accepted on GETs
 *   only. A POST always needs the header and `Content-Type: application/json` — a cross-site form can send neither,
 *   and the cookie alone changes nothing (CSRF).
 * - **Rates**: a full resync at most once per `fullSyncIntervalMs` (60 s), other POSTs from a small token bucket,
 *   failed credentials per peer address; beyond, 429 RATE_LIMITED with Retry-After.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLoopbackHost } from '../config/gateway-config.js';
import { GatewayError, ProtocolError } from '../errors.js';
import { KeyedTokenBuckets } from '../util/token-bucket.js';

export const SESSION_COOKIE = 'inbetweenies_session';
const COOKIE_MAX_AGE_SECONDS = 30 * 86_400;

export interface HttpGuardOptions {
  /** `http.token`; undefined: no credentials asked (the listener is then on loopback only). */
  readonly token: string | undefined;
  /** `http.allowedHosts`: names the listener also answers to. */
  readonly allowedHosts: readonly string[];
  readonly now?: () => number;
  /** A full resync at most this often; default 60 s. */
  readonly fullSyncIntervalMs?: number;
  /** Other POSTs: a bucket of `postBurst` (default 5) refilled at `postsPerMinute` (default 6). */
  readonly postBurst?: number;
  readonly postsPerMinute?: number;
}

/** What a request may do once admitted; `redirect`: answered already (the token was turned into a cookie). */
export type Admission = 'ok' | 'answered';

export class HttpGuard {
  readonly #token: Buffer | undefined;
  readonly #cookie: Buffer | undefined;
  readonly #allowed: ReadonlySet<string>;
  readonly #now: () => number;
  readonly #fullEveryMs: number;
  readonly #posts: KeyedTokenBuckets;
  readonly #failures: KeyedTokenBuckets;
  #lastFullAt = -Infinity;

  constructor(options: HttpGuardOptions) {
    if (options.token !== undefined && options.token.length < 16) throw new TypeError(`http guard: expected a token of at least 16 characters, got ${options.token.length}`);
    this.#token = options.token === undefined ? undefined : Buffer.from(options.token, 'utf8');
    this.#cookie = options.token === undefined ? undefined : Buffer.from(cookieValue(options.token), 'utf8');
    this.#allowed = new Set(options.allowedHosts.map(normaliseHost));
    this.#now = options.now ?? Date.now;
    this.#fullEveryMs = options.fullSyncIntervalMs ?? 60_000;
    this.#posts = new KeyedTokenBuckets({ burst: options.postBurst ?? 5, ratePerSecond: (options.postsPerMinute ?? 6) / 60, now: this.#now });
    this.#failures = new KeyedTokenBuckets({ burst: 10, ratePerSecond: 0.1, now: this.#now, maxKeys: 10_000 });
  }

  /** Host, then credentials; throws a GatewayError (403, 401, 429), or answers a `?token=` visit with a redirect. */
  admit(req: IncomingMessage, url: URL, res: ServerResponse): Admission {
    this.#checkHost(req);
    if (this.#token === undefined) return 'ok';
    const bearer = bearerOf(req.headers.authorization);
    if (bearer !== undefined) {
      if (this.#matches(bearer, this.#token)) return 'ok';
      throw this.#failed(req, 'wrong token in Authorization: Bearer');
    }
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    const query = url.searchParams.get('token');
    if (isRead && query !== null) {
      if (!this.#matches(query, this.#token)) throw this.#failed(req, 'wrong ?token=');
      res.writeHead(303, { Location: url.pathname, 'Set-Cookie': `${SESSION_COOKIE}=${cookieValue(query)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${COOKIE_MAX_AGE_SECONDS}`, 'Cache-Control': 'no-store', 'Content-Length': 0 });
      res.end();
      return 'answered';
    }
    const cookie = cookieOf(req.headers.cookie, SESSION_COOKIE);
    if (cookie !== undefined && this.#cookie !== undefined && this.#matches(cookie, this.#cookie)) {
      if (isRead) return 'ok';
      throw new GatewayError('UNAUTHORIZED', `${req.method ?? 'POST'} needs Authorization: Bearer <http.token>; the page's cookie is for reading only`);
    }
    throw new GatewayError('UNAUTHORIZED', 'this listener needs its token: Authorization: Bearer <http.token>, or open the page once with ?token=<http.token>');
  }

  /** Takes a POST's share of the rate; `full`: a full resync (at most one per interval). Throws RATE_LIMITED. */
  limitPost(kind: 'full-sync' | 'post'): void {
    const now = this.#now();
    if (kind === 'full-sync') {
      const wait = this.#lastFullAt + this.#fullEveryMs - now;
      if (wait > 0) {
        throw new ProtocolError('RATE_LIMITED', `a full resync ran less than ${Math.round(this.#fullEveryMs / 1000)} s ago; try again in ${Math.ceil(wait / 1000)} s`, { retryAfterSeconds: Math.ceil(wait / 1000) });
      }
      this.#lastFullAt = now;
    }
    const decision = this.#posts.take('post');
    if (!decision.ok) {
      throw new ProtocolError('RATE_LIMITED', `too many control requests; try again in ${decision.retryAfterSeconds} s`, { retryAfterSeconds: decision.retryAfterSeconds });
    }
  }

  #checkHost(req: IncomingMessage): void {
    const raw = req.headers.host;
    if (raw === undefined || raw === '') throw new GatewayError('HOST_NOT_ALLOWED', 'a Host header is required');
    const host = normaliseHost(stripPort(raw));
    if (isLoopbackHost(host) || this.#allowed.has(host)) return;
    const local = req.socket.localAddress;
    if (local !== undefined && normaliseHost(local.replace(/^::ffff:/, '')) === host) return;
    throw new GatewayError('HOST_NOT_ALLOWED', `Host ${JSON.stringify(raw.slice(0, 100))} is not one this listener answers to: add it to http.allowedHosts`);
  }

  #matches(given: string, expected: Buffer): boolean {
    const a = Buffer.from(given, 'utf8');
    return a.length === expected.length && timingSafeEqual(a, expected);
  }

  /** A wrong credential: 401, or 429 once a peer has failed too often (guessing). */
  #failed(req: IncomingMessage, what: string): GatewayError {
    const decision = this.#failures.take(req.socket.remoteAddress ?? '?');
    if (!decision.ok) return new ProtocolError('RATE_LIMITED', `too many wrong tokens; try again in ${decision.retryAfterSeconds} s`, { retryAfterSeconds: decision.retryAfterSeconds });
    return new GatewayError('UNAUTHORIZED', what);
  }
}

/** The cookie holds a value derived from the token (HMAC), so a leaked cookie is not the token the POSTs need. */
function cookieValue(token: string): string {
  return createHmac('sha256', token).update('inbetweenies-gateway status page').digest('base64url');
}

function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `[::1]:9180` → `::1`, `pi.local:9180` → `pi.local`. */
function stripPort(host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed?.[1] !== undefined) return bracketed[1];
  const colons = host.split(':').length - 1;
  return colons === 1 ? host.slice(0, host.indexOf(':')) : host;
}

function normaliseHost(host: string): string {
  return host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

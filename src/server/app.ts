/**
 * The request pipeline: route → media type → bearer token → rate limit → body (capped) → HMAC → gunzip (capped) →
 * JSON → handler (a live sync_request may be held first, `hold`) → reply (gzip, signature). Every step fails with a ProtocolError that becomes
 * `{"type":"error","code","message","retry_after"?}` (design.md §Errors); anything else is a genuine bug and is a
 * logged 500 INTERNAL. Bad input never produces a 500.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  HEADER_CLIENT_ID,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
  acceptsGzip,
  contentEncodingOf,
  decodeGzip,
  verifyRequest,
} from '../protocol/index.js';
import type { ServerConfig } from './config.js';
import {
  answerSyncRequest,
  handleHealth,
  handleRefresh,
  handleSyncAck,
  handleSyncPush,
  handleSyncRequest,
  handleToken,
  parseSyncRequest,
  type HandlerDeps,
} from './handlers.js';
import { errorReply, readBody, sendReply, type Reply, type SigningContext } from './http/io.js';
import { NonceCache } from './http/nonces.js';
import { RateLimiter } from './http/rate-limit.js';
import type { ChangeNotifier, LiveWaits } from './live/index.js';
import type { ClientRecord, ServerStore } from './store/index.js';

type SyncHandler = (deps: HandlerDeps, client: ClientRecord, body: unknown) => Reply;
type AuthHandler = (deps: HandlerDeps, body: unknown, signedBy: string | undefined) => Reply;

type Route =
  | { kind: 'sync'; handler: SyncHandler; live?: true }
  | { kind: 'auth'; handler: AuthHandler }
  | { kind: 'health' };

const ROUTES: Readonly<Record<string, { method: 'GET' | 'POST'; route: Route }>> = {
  '/api/v1/sync/request': { method: 'POST', route: { kind: 'sync', handler: handleSyncRequest, live: true } },
  '/api/v1/sync/push': { method: 'POST', route: { kind: 'sync', handler: handleSyncPush } },
  '/api/v1/sync/ack': { method: 'POST', route: { kind: 'sync', handler: handleSyncAck } },
  '/api/v1/auth/token': { method: 'POST', route: { kind: 'auth', handler: handleToken } },
  '/api/v1/auth/refresh': { method: 'POST', route: { kind: 'auth', handler: handleRefresh } },
  '/api/v1/health': { method: 'GET', route: { kind: 'health' } },
};

export interface AppOptions {
  readonly store: ServerStore;
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly clock: () => number;
  /** True once the server is closing: replies ask clients to close their connections. */
  readonly isClosing: () => boolean;
  /** Live waits (docs/protocol.md §Live waits): holds sync_requests; `changes` wakes them on every push. */
  readonly live: LiveWaits;
  readonly changes: ChangeNotifier;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Per-request state the steps fill in. */
interface Exchange {
  client: ClientRecord | undefined;
  signing: SigningContext | undefined;
  signedBy: string | undefined;
}

export class App {
  private readonly deps: HandlerDeps;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly config: ServerConfig;
  private readonly clientLimiter: RateLimiter;
  private readonly addressLimiter: RateLimiter;
  private readonly nonces: NonceCache;
  private readonly isClosing: () => boolean;
  private readonly live: LiveWaits;

  constructor(options: AppOptions) {
    this.deps = { store: options.store, config: options.config, changes: options.changes };
    this.live = options.live;
    this.config = options.config;
    this.log = options.logger;
    this.clock = options.clock;
    this.isClosing = options.isClosing;
    const { ratePerSecond, burst } = options.config.rateLimit;
    this.clientLimiter = new RateLimiter({ ratePerSecond, burst, clock: this.clock });
    this.addressLimiter = new RateLimiter({ ratePerSecond, burst, clock: this.clock });
    this.nonces = new NonceCache({ windowSeconds: options.config.hmac.windowSeconds });
  }

  /** The node:http request listener. Never throws; every outcome is a reply. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const ex: Exchange = { client: undefined, signing: undefined, signedBy: undefined };
    this.process(req, res, ex)
      .catch((err: unknown) => this.failure(err, req))
      .then(async (reply) => {
        // A body not read to its end (early refusal) cannot be skipped safely on a kept-alive connection.
        const close = !req.complete || this.isClosing();
        await sendReply(res, reply, {
          gzip: acceptsGzip(req.headers['accept-encoding']),
          signing: ex.signing,
          nowSeconds: Math.floor(this.clock() / 1000),
          close,
        });
        this.log.debug(
          {
            method: req.method,
            path: req.url,
            status: reply.status,
            client: ex.client?.clientId,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          },
          'request',
        );
      })
      .catch((err: unknown) => {
        this.log.error({ err }, 'reply failed');
        res.destroy();
      });
  };

  private failure(err: unknown, req: IncomingMessage): Reply {
    if (err instanceof ProtocolError) return errorReply(err);
    this.log.error({ err, method: req.method, path: req.url }, 'internal error');
    return errorReply(new ProtocolError('INTERNAL', 'internal server error'));
  }

  private async process(req: IncomingMessage, res: ServerResponse, ex: Exchange): Promise<Reply> {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? url;
    const entry = Object.prototype.hasOwnProperty.call(ROUTES, path) ? ROUTES[path] : undefined;
    if (entry === undefined) throw new ProtocolError('NOT_FOUND', `no endpoint ${path}`);
    if (req.method !== entry.method) {
      const err = new ProtocolError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} not allowed on ${path}`);
      return { ...errorReply(err), headers: { allow: entry.method } };
    }
    const route = entry.route;
    if (route.kind === 'health') return handleHealth(this.deps);
    const contentType = (header(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/json') {
      throw new ProtocolError('UNSUPPORTED_MEDIA_TYPE', `content-type must be application/json, got ${contentType || 'none'}`);
    }
    const encoding = contentEncodingOf(req.headers['content-encoding']);
    if (encoding === 'unsupported') {
      throw new ProtocolError('UNSUPPORTED_MEDIA_TYPE', 'content-encoding must be gzip or identity');
    }
    if (route.kind === 'sync') {
      ex.client = this.authenticateLimited(req);
      this.limit(this.clientLimiter, `client:${ex.client.clientId}`);
    } else {
      this.limit(this.addressLimiter, `addr:${req.socket.remoteAddress ?? '?'}`);
    }
    const raw = await readBody(req, this.config.maxBodyBytes);
    this.verifySignature(req, raw, ex);
    const bytes = encoding === 'gzip' ? await decodeGzip(raw, this.config.maxInflatedBytes) : raw;
    const body = parseJson(bytes);
    if (route.kind === 'sync' && ex.client !== undefined) {
      return route.live ? this.hold(ex.client, body, res) : route.handler(this.deps, ex.client, body);
    }
    if (route.kind === 'auth') return route.handler(this.deps, body, ex.signedBy);
    throw new Error('unreachable route kind');
  }

  /**
   * The live-wait step (docs/protocol.md §Live waits): a sync_request with `wait` whose delta is empty is held until
   * another client commits in its home, its wait runs out, or the server shuts down; then answered as usual.
   */
  private hold(client: ClientRecord, body: unknown, res: ServerResponse): Reply | Promise<Reply> {
    const msg = parseSyncRequest(body, client);
    const waitSeconds = this.live.waitSecondsFor(msg);
    if (waitSeconds === 0) return answerSyncRequest(this.deps, client, msg).reply;
    const spec = { clientId: client.clientId, homeId: client.homeId, waitSeconds, connection: res };
    return this.live.hold(spec, (outcome) => answerSyncRequest(this.deps, client, msg, outcome));
  }

  /** Bearer check; a request with an unknown token counts against its address's bucket (token guessing). */
  private authenticateLimited(req: IncomingMessage): ClientRecord {
    try {
      return this.authenticate(req);
    } catch (err) {
      if (err instanceof ProtocolError && err.code === 'UNAUTHORIZED') {
        this.limit(this.addressLimiter, `addr:${req.socket.remoteAddress ?? '?'}`);
      }
      throw err;
    }
  }

  private authenticate(req: IncomingMessage): ClientRecord {
    const auth = header(req, 'authorization') ?? '';
    const match = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,512})$/i.exec(auth.trim());
    if (match === null || match[1] === undefined) {
      throw new ProtocolError('UNAUTHORIZED', 'missing or malformed Authorization: Bearer token');
    }
    const lookup = this.deps.store.accounts.lookupToken(match[1], 'access');
    if (lookup.ok) return lookup.client;
    throw lookup.reason === 'expired'
      ? new ProtocolError('AUTH_EXPIRED', 'access token expired: refresh or re-authenticate')
      : new ProtocolError('UNAUTHORIZED', 'unknown access token');
  }

  private limit(limiter: RateLimiter, key: string): void {
    const decision = limiter.take(key);
    if (!decision.ok) {
      throw new ProtocolError('RATE_LIMITED', `too many requests; retry in ${decision.retryAfterSeconds} s`, {
        retryAfterSeconds: decision.retryAfterSeconds,
      });
    }
  }

  /** design.md §HMAC: checks a signed request (or refuses an unsigned one when signing is required). */
  private verifySignature(req: IncomingMessage, raw: Buffer, ex: Exchange): void {
    const signature = header(req, HEADER_SIGNATURE);
    if (signature === undefined) {
      if (this.config.hmac.required) throw new ProtocolError('BAD_SIGNATURE', 'request must be signed (HMAC required)');
      return;
    }
    const named = header(req, HEADER_CLIENT_ID);
    let client = ex.client;
    if (client !== undefined) {
      if (named !== undefined && named !== client.clientId) {
        throw new ProtocolError('BAD_SIGNATURE', `${HEADER_CLIENT_ID} does not match the token's client`);
      }
    } else {
      client = named === undefined ? undefined : this.deps.store.accounts.getClient(named);
      if (client === undefined) throw new ProtocolError('BAD_SIGNATURE', `${HEADER_CLIENT_ID} names no known client`);
    }
    const nowSeconds = Math.floor(this.clock() / 1000);
    const headers = { timestamp: header(req, HEADER_TIMESTAMP), nonce: header(req, HEADER_NONCE), signature };
    const check = verifyRequest({
      secret: client.secret,
      method: req.method ?? 'POST',
      path: req.url ?? '/',
      clientId: client.clientId,
      body: raw,
      headers,
      nowSeconds,
      windowSeconds: this.config.hmac.windowSeconds,
    });
    if (!check.ok) throw new ProtocolError('BAD_SIGNATURE', `request signature rejected: ${check.reason}`);
    const nonce = headers.nonce ?? '';
    const fresh = this.nonces.accept(client.clientId, nonce, Number(headers.timestamp), nowSeconds);
    if (!fresh.ok) throw new ProtocolError('BAD_SIGNATURE', `request signature rejected: ${fresh.reason}`);
    ex.signing = { secret: client.secret, nonce };
    ex.signedBy = client.clientId;
  }
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('BAD_REQUEST', `malformed JSON: ${(err as Error).message}`);
  }
}

/**
 * The request pipeline, one named step each (docs/protocol.md §Processing order of a POST):
 *
 *   route → media type → content encoding → admission (address bucket) → bearer token → signature presence and the
 *   unsigned-token bucket → body (capped per endpoint, within the server's body memory) → signature → client bucket →
 *   decode slot (gzip) → inflate, UTF-8, JSON scan, JSON.parse → handler (a live sync_request may be held first,
 *   `hold`) → reply (gzip, signature)
 *
 * Everything a step can refuse costs at most what the steps before it allowed: nothing is read before the request
 * is admitted, nothing is inflated or parsed before the signature is checked, and nothing is charged to a client's
 * own bucket before its signature verified (a stolen bearer token without the secret cannot starve the client).
 * Every step fails with a ProtocolError that becomes `{"type":"error","code","message","retry_after"?}`
 * (docs/protocol.md §Errors), is counted and logged rate-limited (refusals.ts); anything else is a genuine bug and is a
 * logged 500 INTERNAL. Bad input never produces a 500.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '../errors.js';
import type { Logger } from '../log.js';
import { acceptsGzip, contentEncodingOf, HEADER_CLIENT_ID } from '../protocol/index.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { IssuedToClients } from './compat.js';
import type { ServerConfig } from './config.js';
import { endpointTable, type BodyEndpoint, type Endpoint } from './endpoints.js';
import { answerSyncRequest, handleHealth, parseSyncRequest, type HandlerDeps } from './handlers.js';
import { Authenticator, header } from './http/authn.js';
import { BodyBudget, readBody, type HeldBody } from './http/body.js';
import { ClientAddresses } from './http/client-address.js';
import { decodeJsonBody, DecodeSlots } from './http/decode.js';
import { errorReply, sendReply, type Reply, type SigningContext } from './http/io.js';
import { RateLimiter } from './http/rate-limit.js';
import { capText, Refusals } from './http/refusals.js';
import type { ChangeNotifier, LiveWaits } from './live/index.js';
import { ServerMetrics } from './metrics.js';
import type { ClientRecord } from './store/accounts.js';
import type { SyncStore } from './store/contract.js';

export interface AppOptions {
  /** SQLite or PostgreSQL (store/contract.ts): the pipeline is the same on both. */
  readonly store: SyncStore;
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly clock: () => number;
  /** True once the server is closing: replies ask clients to close their connections. */
  readonly isClosing: () => boolean;
  /** Live waits (docs/protocol.md §Live waits): holds sync_requests; `changes` wakes them on every push. */
  readonly live: LiveWaits;
  readonly changes: ChangeNotifier;
}

/** Per-request state the steps fill in. */
interface Exchange {
  readonly address: string;
  endpoint: Endpoint | undefined;
  /** The bearer token's client (sync endpoints) or the verified signer (auth endpoints). */
  client: ClientRecord | undefined;
  /** SHA-256 of the bearer token (sync endpoints). */
  tokenHash: string | undefined;
  signing: SigningContext | undefined;
  body: HeldBody | undefined;
  releaseSlot: (() => void) | undefined;
}

export class App {
  readonly metrics: ServerMetrics;
  private readonly deps: HandlerDeps;
  /** Log lines of the original Python clients' spellings met (server/compat.ts). */
  private readonly compatNotes: RateLimitedLog;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly config: ServerConfig;
  private readonly endpoints: ReadonlyMap<string, Endpoint>;
  private readonly addresses: ClientAddresses;
  private readonly authn: Authenticator;
  private readonly budget: BodyBudget;
  private readonly slots: DecodeSlots;
  private readonly refusals: Refusals;
  /** Per client, charged after its signature verified. */
  private readonly clientLimiter: RateLimiter;
  /** Per bearer token, for unsigned requests (hmac.required false). */
  private readonly tokenLimiter: RateLimiter;
  /** Per client address: every auth request, and every refused credential or signature on a sync endpoint. */
  private readonly addressLimiter: RateLimiter;
  private readonly isClosing: () => boolean;
  private readonly live: LiveWaits;

  constructor(options: AppOptions) {
    const { config } = options;
    this.compatNotes = new RateLimitedLog({
      logger: options.logger,
      intervalMs: config.log.refusalIntervalSeconds * 1000,
      level: 'info',
      now: options.clock,
    });
    this.live = options.live;
    this.config = config;
    this.log = options.logger;
    this.clock = options.clock;
    this.isClosing = options.isClosing;
    this.endpoints = endpointTable(config);
    this.addresses = new ClientAddresses(config.trustedProxies);
    this.authn = new Authenticator({ store: options.store, windowSeconds: config.hmac.windowSeconds, clock: this.clock });
    this.budget = new BodyBudget(config.limits.bodyMemoryBytes);
    this.slots = new DecodeSlots(config.limits.decodeConcurrency, config.limits.decodeQueue);
    this.metrics = new ServerMetrics(
      {
        bodyMemoryBytes: () => this.budget.inUse(),
        decodesActive: () => this.slots.inUse(),
        decodesWaiting: () => this.slots.waiting(),
      },
      { processMetrics: config.metrics.enabled },
    );
    this.deps = {
      store: options.store,
      config,
      changes: options.changes,
      metrics: this.metrics,
      compat: { issued: new IssuedToClients(), notes: this.compatNotes },
    };
    this.refusals = new Refusals(this.metrics, {
      logger: this.log,
      intervalMs: config.log.refusalIntervalSeconds * 1000,
      now: this.clock,
    });
    const { ratePerSecond, burst } = config.rateLimit;
    this.clientLimiter = new RateLimiter({ ratePerSecond, burst, clock: this.clock });
    this.tokenLimiter = new RateLimiter({ ratePerSecond, burst, clock: this.clock });
    this.addressLimiter = new RateLimiter({ ratePerSecond, burst, clock: this.clock });
  }

  /** The node:http request listener. Never throws; every outcome is a reply. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const ex: Exchange = {
      address: this.addresses.of(req.socket.remoteAddress, req.headers['x-forwarded-for']),
      endpoint: undefined,
      client: undefined,
      tokenHash: undefined,
      signing: undefined,
      body: undefined,
      releaseSlot: undefined,
    };
    this.process(req, res, ex)
      .catch((err: unknown) => this.failure(err, req, ex))
      .then(async (reply) => {
        this.release(ex);
        // A body not read to its end (early refusal) cannot be skipped safely on a kept-alive connection.
        const close = !req.complete || this.isClosing();
        await sendReply(res, reply, {
          gzip: acceptsGzip(req.headers['accept-encoding']),
          signing: ex.signing,
          nowMs: this.clock(),
          close,
        });
        this.metrics.requests.inc({ endpoint: ex.endpoint?.name ?? 'unknown', status: String(reply.status) });
        this.log.debug(
          {
            method: req.method,
            path: capText(req.url, 128),
            status: reply.status,
            client: ex.client?.clientId,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          },
          'request',
        );
      })
      .catch((err: unknown) => {
        this.release(ex);
        this.log.error({ err }, 'reply failed');
        res.destroy();
      });
  };

  /** Logs what the refusal log counted but did not yet report (server close). */
  flushLogs(): void {
    this.refusals.flush();
    this.compatNotes.flush();
  }

  private async process(req: IncomingMessage, res: ServerResponse, ex: Exchange): Promise<Reply> {
    const endpoint = this.route(req, ex);
    if (endpoint.kind === 'health') return handleHealth(this.deps);
    if (endpoint.kind === 'query') return this.query(req, endpoint, ex);
    this.checkMediaType(req);
    const gzip = this.checkEncoding(req, endpoint);
    this.admit(endpoint, ex);
    if (endpoint.kind === 'sync') ({ client: ex.client, tokenHash: ex.tokenHash } = await this.authn.bearer(req));
    this.checkUnsigned(req, ex);
    ex.body = await readBody(req, endpoint.body.maxRawBytes, this.budget);
    await this.checkSignature(req, endpoint, ex, ex.body.bytes);
    if (gzip) ex.releaseSlot = await this.slots.acquire();
    const body = await decodeJsonBody(ex.body.bytes, gzip, endpoint.body);
    // The raw body and the decode slot are done with: a held live wait must not keep them for up to its wait.
    this.release(ex);
    if (endpoint.kind === 'sync' && ex.client !== undefined) {
      return endpoint.live === true ? this.hold(ex.client, body, res) : endpoint.handler(this.deps, ex.client, body);
    }
    if (endpoint.kind === 'auth') return endpoint.handler(this.deps, body, ex.signing === undefined ? undefined : ex.client?.clientId);
    throw new Error('unreachable: a sync endpoint without a client');
  }

  /**
   * A signed GET (the history extension): admission, bearer token, signature presence, an empty body, the signature
   * over the path with its query and the empty body, the client's bucket, then the handler. The query is bounded by
   * the server's request-line limit and parsed by the handler's schema.
   */
  private async query(req: IncomingMessage, endpoint: Extract<Endpoint, { kind: 'query' }>, ex: Exchange): Promise<Reply> {
    const key = `addr:${ex.address}`;
    const admitted = this.addressLimiter.peek(key);
    if (!admitted.ok) throw rateLimited(admitted.retryAfterSeconds, 'address');
    ({ client: ex.client, tokenHash: ex.tokenHash } = await this.authn.bearer(req));
    this.checkUnsigned(req, ex);
    ex.body = await readBody(req, 0, this.budget);
    await this.verifySigned(req, ex, ex.body.bytes);
    this.release(ex);
    if (ex.client === undefined) throw new Error('unreachable: a query endpoint without a client');
    return await endpoint.handler(this.deps, ex.client, req.url ?? '/');
  }

  /**
   * The live-wait step (docs/protocol.md §Live waits): a sync_request with `wait` whose delta is empty is held until
   * another client commits in its home, its wait runs out, or the server shuts down; then answered as usual.
   */
  private async hold(client: ClientRecord, body: unknown, res: ServerResponse): Promise<Reply> {
    const msg = parseSyncRequest(body, client);
    const waitSeconds = this.live.waitSecondsFor(msg);
    if (waitSeconds === 0) return (await answerSyncRequest(this.deps, client, msg)).reply;
    const spec = { clientId: client.clientId, homeId: client.homeId, waitSeconds, connection: res };
    return this.live.hold(spec, (outcome) => answerSyncRequest(this.deps, client, msg, outcome));
  }

  /** Step: the endpoint of the path (404), with its method (405). */
  private route(req: IncomingMessage, ex: Exchange): Endpoint {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? url;
    const endpoint = this.endpoints.get(path);
    if (endpoint === undefined) throw new ProtocolError('NOT_FOUND', `no endpoint ${capText(path, 128)}`);
    ex.endpoint = endpoint;
    if (req.method !== endpoint.method) {
      throw new ProtocolError('METHOD_NOT_ALLOWED', `${capText(req.method, 16) ?? '?'} not allowed on ${path}`);
    }
    return endpoint;
  }

  /** Step: every POST body is application/json (415). */
  private checkMediaType(req: IncomingMessage): void {
    const contentType = (header(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/json') {
      throw new ProtocolError(
        'UNSUPPORTED_MEDIA_TYPE',
        `content-type must be application/json, got ${capText(contentType, 64) || 'none'}`,
        { reason: 'content_type' },
      );
    }
  }

  /** Step: identity or gzip, and gzip only where the endpoint takes it (415). Returns whether the body is gzip. */
  private checkEncoding(req: IncomingMessage, endpoint: BodyEndpoint): boolean {
    const encoding = contentEncodingOf(req.headers['content-encoding']);
    if (encoding === 'unsupported') {
      throw new ProtocolError('UNSUPPORTED_MEDIA_TYPE', 'content-encoding must be gzip or identity', { reason: 'content_encoding' });
    }
    if (encoding === 'gzip' && endpoint.kind === 'auth') {
      throw new ProtocolError('UNSUPPORTED_MEDIA_TYPE', `${endpoint.name} takes uncompressed bodies only`, {
        reason: 'content_encoding',
      });
    }
    return encoding === 'gzip';
  }

  /**
   * Step: the per-address bucket. An auth request takes a token from it (anyone may call those endpoints); a sync
   * request only needs one left, since only refused tokens and signatures take from it (failure()).
   */
  private admit(endpoint: BodyEndpoint, ex: Exchange): void {
    const key = `addr:${ex.address}`;
    const decision = endpoint.kind === 'auth' ? this.addressLimiter.take(key) : this.addressLimiter.peek(key);
    if (!decision.ok) throw rateLimited(decision.retryAfterSeconds, 'address');
  }

  /**
   * Step: an unsigned request is refused at once when signing is required (its body is never read); otherwise an
   * unsigned sync request is charged to its bearer token's bucket — the token is all that identifies it.
   */
  private checkUnsigned(req: IncomingMessage, ex: Exchange): void {
    if (this.authn.isSigned(req)) return;
    if (this.config.hmac.required) {
      throw new ProtocolError('BAD_SIGNATURE', 'request must be signed (HMAC required)', { reason: 'unsigned' });
    }
    if (ex.tokenHash === undefined) return; // auth endpoints: the address bucket already counted it
    const decision = this.tokenLimiter.take(`token:${ex.tokenHash}`);
    if (!decision.ok) throw rateLimited(decision.retryAfterSeconds, 'token');
  }

  /** Step: a signed request is verified over the body bytes as sent; then its client's bucket is charged. */
  private async checkSignature(req: IncomingMessage, endpoint: BodyEndpoint, ex: Exchange, raw: Buffer): Promise<void> {
    await this.verifySigned(req, ex, raw, endpoint.kind === 'sync');
  }

  /** The signature step (a sync POST, a signed GET, an auth request); `charge`: take from the client's bucket. */
  private async verifySigned(req: IncomingMessage, ex: Exchange, raw: Buffer, charge = true): Promise<void> {
    if (!this.authn.isSigned(req)) return;
    const signed = await this.authn.verify(req, raw, ex.client);
    ex.client = signed.client;
    ex.signing = { secret: signed.client.secret, nonce: signed.nonce };
    if (charge) this.chargeClient(signed.client.clientId);
  }

  private chargeClient(clientId: string): void {
    const decision = this.clientLimiter.take(`client:${clientId}`);
    if (!decision.ok) throw rateLimited(decision.retryAfterSeconds, 'client');
  }

  private release(ex: Exchange): void {
    ex.body?.release();
    ex.body = undefined;
    ex.releaseSlot?.();
    ex.releaseSlot = undefined;
  }

  private failure(err: unknown, req: IncomingMessage, ex: Exchange): Reply {
    if (!(err instanceof ProtocolError)) {
      this.log.error({ err, method: req.method, path: capText(req.url, 128) }, 'internal error');
      return errorReply(new ProtocolError('INTERNAL', 'internal server error'));
    }
    // Refused credentials on a sync endpoint count against the address (token guessing, forged signatures).
    if ((ex.endpoint?.kind === 'sync' || ex.endpoint?.kind === 'query') && (err.code === 'UNAUTHORIZED' || err.code === 'BAD_SIGNATURE')) {
      this.addressLimiter.take(`addr:${ex.address}`);
    }
    this.refusals.record(err, {
      endpoint: ex.endpoint?.name ?? 'unknown',
      path: req.url,
      address: ex.address,
      client: ex.client?.clientId ?? header(req, HEADER_CLIENT_ID),
    });
    const reply = errorReply(err);
    if (err.code === 'METHOD_NOT_ALLOWED' && ex.endpoint !== undefined) {
      return { ...reply, headers: { ...reply.headers, allow: ex.endpoint.method } };
    }
    return reply;
  }
}

function rateLimited(retryAfterSeconds: number, reason: string): ProtocolError {
  return new ProtocolError('RATE_LIMITED', `too many requests; retry in ${retryAfterSeconds} s`, { retryAfterSeconds, reason });
}

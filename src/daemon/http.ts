/**
 * The daemon's HTTP listener (docs/operations.md): GET /healthz, GET /metrics (Prometheus), and the local control
 * endpoints the CLI uses: GET /status, POST /sync, POST /jobs/<name>; the status page and its data come as extra
 * routes (status-page.ts). Errors are JSON `{"type":"error","code","message"}` with the status of the code
 * (docs/protocol.md §Errors), never a 500 for bad input. Every request passes the guard first (http-guard.ts: Host,
 * token, POST rates). POSTs must say `Content-Type: application/json`: a browser on the Pi cannot send that
 * cross-origin without a preflight this server never answers, so a web page cannot trigger a sync.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { GatewayError, ProtocolError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { BodyError, readBody } from '../util/http-body.js';
import type { HttpGuard } from './http-guard.js';

export interface ControlHandlers {
  health(): { healthy: boolean; body: unknown };
  metrics(): Promise<{ contentType: string; text: string }>;
  status(): unknown;
  sync(full: boolean): Promise<unknown>;
  runJob(name: string): Promise<unknown>;
}

/** A GET route beside the control endpoints (the status page, its event stream, its data). */
export interface ExtraRoute {
  run(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | void;
}

export interface ControlServerOptions {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  readonly handlers: ControlHandlers;
  /** Host, token and POST-rate checks (absent: none, for tests of the routes alone). */
  readonly guard?: HttpGuard;
  /** More GET routes by path. */
  readonly extraRoutes?: ReadonlyMap<string, ExtraRoute>;
}

const SyncBody = z.strictObject({ full: z.boolean().optional() });
const MAX_BODY = 4096;

type Route = { method: 'GET' | 'POST'; run: (req: IncomingMessage, body: unknown, res: ServerResponse, url: URL) => Promise<void> | void };

export class ControlServer {
  readonly #o: ControlServerOptions;
  readonly #log: Logger;
  #server: Server | undefined;

  constructor(options: ControlServerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ module: 'http' });
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 120_000;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { address, port } = server.address() as AddressInfo;
    const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
    this.#log.info({ url }, 'health, metrics and control listening');
    return { host: address, port, url };
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  #routes(path: string): Route | undefined {
    const h = this.#o.handlers;
    const extra = this.#o.extraRoutes?.get(path);
    if (extra) return { method: 'GET', run: (req, _b, res, url) => extra.run(req, res, url) };
    if (path === '/healthz') {
      return { method: 'GET', run: (_q, _b, res) => { const r = h.health(); send(res, r.healthy ? 200 : 503, r.body); } };
    }
    if (path === '/metrics') {
      return { method: 'GET', run: async (_q, _b, res) => { const m = await h.metrics(); sendText(res, 200, m.contentType, m.text); } };
    }
    if (path === '/status') return { method: 'GET', run: (_q, _b, res) => send(res, 200, h.status()) };
    if (path === '/sync') {
      return {
        method: 'POST',
        run: async (_q, body, res) => {
          const parsed = SyncBody.safeParse(body ?? {});
          if (!parsed.success) throw new GatewayError('BAD_REQUEST', `body: expected {"full"?: boolean}, ${parsed.error.issues[0]?.message ?? 'invalid'}`);
          this.#o.guard?.limitPost(parsed.data.full === true ? 'full-sync' : 'post');
          send(res, 200, await h.sync(parsed.data.full ?? false));
        },
      };
    }
    const job = /^\/jobs\/([a-zA-Z][\w-]{0,63})$/.exec(path);
    if (job?.[1]) {
      const name = job[1];
      return {
        method: 'POST',
        run: async (_q, _b, res) => {
          this.#o.guard?.limitPost('post');
          send(res, 200, await h.runJob(name));
        },
      };
    }
    return undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname;
      if (this.#o.guard?.admit(req, url, res) === 'answered') return;
      const route = this.#routes(path);
      if (!route) throw new GatewayError('NOT_FOUND', `no route ${path} (try /, /healthz, /metrics, /status, POST /sync)`);
      if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
        res.setHeader('Allow', route.method);
        throw new GatewayError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} ${path}: expected ${route.method}`);
      }
      const body = route.method === 'POST' ? await readJson(req) : undefined;
      await route.run(req, body, res, url);
    } catch (err) {
      if (err instanceof GatewayError) {
        const status = err.status;
        // An expected failure (a sync that could not reach the server) was logged where it happened: one line here,
        // no stack (its cause chain printed the same message three times).
        if (status >= 500) this.#log.warn({ code: err.code, status, message: err.message }, 'control request failed');
        if (err.code === 'PAYLOAD_TOO_LARGE' && !res.headersSent) res.setHeader('Connection', 'close'); // the rest is never read
        if (!res.headersSent) errorHeaders(res, err);
        send(res, status, { type: 'error', code: err.code, message: err.message });
        return;
      }
      this.#log.error({ err }, 'control request failed');
      send(res, 500, { type: 'error', code: 'INTERNAL' satisfies ErrorCode, message: err instanceof Error ? err.message : String(err) });
    }
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new GatewayError('UNSUPPORTED_MEDIA_TYPE', `expected Content-Type: application/json, got ${JSON.stringify(type ?? '')}`);
  }
  let raw: Buffer;
  try {
    raw = await readBody(req, MAX_BODY);
  } catch (err) {
    if (err instanceof BodyError) throw new GatewayError(err.code, err.message, { cause: err });
    throw err;
  }
  const text = raw.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatewayError('BAD_REQUEST', 'body is not valid JSON');
  }
}

/** Retry-After for RATE_LIMITED and SERVER_BUSY; the scheme a 401 asks for. */
function errorHeaders(res: ServerResponse, err: GatewayError): void {
  if (err instanceof ProtocolError && err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
  if (err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="inbetweenies-gateway"');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
}

function sendText(res: ServerResponse, status: number, contentType: string, text: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(text);
}

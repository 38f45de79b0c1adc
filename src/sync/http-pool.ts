/**
 * A small keep-alive HTTP(S) client for the sync transport, on node:http / node:https: a bounded pool of connections
 * to one origin, a connect timeout, a headers timeout (request sent → response headers), a body timeout (idle time
 * between body chunks), a cap on the response body, and close() that drains vs destroy() that aborts. It replaces
 * undici here because undici costs the daemon ~6 MB of private memory (its modules and a WebAssembly HTTP parser)
 * for the one request at a time a sync cycle makes. Failures are typed by `code`.
 */
import type { Agent as HttpAgent, ClientRequest, IncomingHttpHeaders, IncomingMessage, RequestOptions } from 'node:http';
import type { AgentOptions as HttpsAgentOptions } from 'node:https';

export type HttpPoolErrorCode = 'TIMEOUT' | 'TRANSPORT' | 'TOO_LARGE';

export class HttpPoolError extends Error {
  readonly code: HttpPoolErrorCode;
  constructor(code: HttpPoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpPoolError';
    this.code = code;
  }
}

export interface HttpPoolOptions {
  /** Connections kept to the origin at most. */
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  /** Longest pause between two chunks of a response body. */
  readonly bodyTimeoutMs: number;
  /** An idle kept-alive connection is closed after this long. */
  readonly keepAliveTimeoutMs: number;
  readonly maxResponseBytes: number;
  /** Extra TLS options for an https: origin (a CA, a server identity check). */
  readonly tls?: Pick<HttpsAgentOptions, 'ca' | 'checkServerIdentity' | 'rejectUnauthorized' | 'servername'>;
}

export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface Stack {
  readonly request: (options: RequestOptions, callback?: (res: IncomingMessage) => void) => ClientRequest;
  readonly agent: HttpAgent;
}

export class HttpPool {
  readonly #url: URL;
  readonly #o: HttpPoolOptions;
  #stack: Promise<Stack> | undefined;
  readonly #inflight = new Set<ClientRequest>();
  readonly #drained: Array<() => void> = [];
  #closed = false;

  constructor(origin: string, options: HttpPoolOptions) {
    this.#url = new URL(origin);
    if (this.#url.protocol !== 'http:' && this.#url.protocol !== 'https:') throw new TypeError(`http pool: expected an http(s) origin, given ${origin}`);
    this.#o = options;
  }

  /** node:http or node:https with a keep-alive agent, loaded on first use (https loads TLS only when needed). */
  #load(): Promise<Stack> {
    this.#stack ??= (async () => {
      const agentOptions = { keepAlive: true, maxSockets: this.#o.connections, maxFreeSockets: this.#o.connections, timeout: this.#o.keepAliveTimeoutMs };
      if (this.#url.protocol === 'https:') {
        const https = await import('node:https');
        return { request: https.request, agent: new https.Agent({ ...agentOptions, ...this.#o.tls }) };
      }
      const http = await import('node:http');
      return { request: http.request, agent: new http.Agent(agentOptions) };
    })();
    return this.#stack;
  }

  /**
   * One exchange. `headersTimeoutMs` / `bodyTimeoutMs` override the pool's for this request only (a held live wait
   * answers after its wait, well past the ordinary headers timeout). `signal` aborts it.
   */
  async request(spec: {
    method: string;
    path: string;
    headers: Record<string, string>;
    body: Buffer;
    headersTimeoutMs?: number;
    bodyTimeoutMs?: number;
    /** Aborts the request at once (a held live wait when the daemon stops): rejects with TRANSPORT. */
    signal?: AbortSignal;
  }): Promise<HttpResponse> {
    if (this.#closed) throw new HttpPoolError('TRANSPORT', 'http pool is closed');
    if (spec.signal?.aborted === true) throw new HttpPoolError('TRANSPORT', 'request aborted');
    const { request, agent } = await this.#load();
    const headersTimeoutMs = spec.headersTimeoutMs ?? this.#o.headersTimeoutMs;
    const bodyTimeoutMs = spec.bodyTimeoutMs ?? this.#o.bodyTimeoutMs;
    return new Promise<HttpResponse>((resolve, reject) => {
      const headers = spec.body.length > 0 ? { ...spec.headers, 'content-length': String(spec.body.length) } : spec.headers;
      const req = request({ protocol: this.#url.protocol, hostname: this.#url.hostname, port: this.#url.port, method: spec.method, path: spec.path, headers, agent });
      this.#inflight.add(req);
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const arm = (ms: number, what: string): void => {
        clearTimeout(timer);
        timer = setTimeout(() => fail(new HttpPoolError('TIMEOUT', `${what} timed out after ${ms} ms`)), ms);
      };
      const onAbort = (): void => fail(new HttpPoolError('TRANSPORT', 'request aborted'));
      spec.signal?.addEventListener('abort', onAbort, { once: true });
      if (spec.signal?.aborted === true) queueMicrotask(onAbort); // aborted while the stack was loading
      const finish = (): void => {
        clearTimeout(timer);
        spec.signal?.removeEventListener('abort', onAbort);
        this.#inflight.delete(req);
        if (this.#inflight.size === 0) for (const done of this.#drained.splice(0)) done();
      };
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        finish();
        req.destroy();
        reject(err instanceof HttpPoolError ? err : new HttpPoolError('TRANSPORT', err.message, { cause: err }));
      };
      req.once('socket', (socket) => {
        // A reused keep-alive socket is connected already; a new one must connect within the connect timeout.
        if (socket.connecting) {
          arm(this.#o.connectTimeoutMs, 'connect');
          socket.once('connect', () => arm(headersTimeoutMs, 'response headers'));
        } else arm(headersTimeoutMs, 'response headers');
      });
      req.once('error', fail);
      req.once('response', (res) => {
        arm(bodyTimeoutMs, 'response body');
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.#o.maxResponseBytes) {
            fail(new HttpPoolError('TOO_LARGE', `response body exceeds ${this.#o.maxResponseBytes} bytes`));
            return;
          }
          chunks.push(chunk);
          arm(bodyTimeoutMs, 'response body');
        });
        res.once('error', fail);
        res.once('aborted', () => fail(new HttpPoolError('TRANSPORT', 'response aborted')));
        res.once('end', () => {
          if (settled) return;
          settled = true;
          finish();
          resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks, size) });
        });
      });
      req.end(spec.body.length > 0 ? spec.body : undefined);
    });
  }

  /** Drains: waits for requests in flight, then closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#inflight.size > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    (await this.#stack)?.agent.destroy();
  }

  /** Aborts requests in flight and closes every connection at once. */
  async destroy(): Promise<void> {
    this.#closed = true;
    for (const req of this.#inflight) req.destroy(new HttpPoolError('TRANSPORT', 'http pool destroyed'));
    (await this.#stack)?.agent.destroy();
  }
}

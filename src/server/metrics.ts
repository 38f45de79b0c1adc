/**
 * The server's Prometheus metrics (prom-client), in a Registry of this server's own (no global registry: two servers
 * in one process — tests — never mix): requests by endpoint and status, refusals by code and reason, the body memory
 * and decode slots in use, and, when the metrics listener is on, the standard process metrics. The exposition is
 * served by `MetricsListener` on its own plain-HTTP listener (127.0.0.1 by default), never on the public one: it
 * needs no token, and it cannot be reached by anyone who can reach the sync API. Names: docs/operations.md.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../log.js';

export const SERVER_METRIC_PREFIX = 'inbetweenies_server_';

export interface ServerGaugeSources {
  readonly bodyMemoryBytes: () => number;
  readonly decodesActive: () => number;
  readonly decodesWaiting: () => number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'endpoint' | 'status'>;
  readonly refusals: Counter<'code' | 'reason'>;

  constructor(sources: ServerGaugeSources, options: { processMetrics: boolean }) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: `${SERVER_METRIC_PREFIX}requests_total`,
      help: 'Requests answered, by endpoint (or "unknown") and HTTP status.',
      labelNames: ['endpoint', 'status'],
      registers,
    });
    this.refusals = new Counter({
      name: `${SERVER_METRIC_PREFIX}refusals_total`,
      help: 'Requests refused with an error code, by code and reason (docs/protocol.md §Errors).',
      labelNames: ['code', 'reason'],
      registers,
    });
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name: `${SERVER_METRIC_PREFIX}${name}`,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge('body_memory_bytes', 'Request body bytes held in memory now (limits.bodyMemoryBytes).', sources.bodyMemoryBytes);
    gauge('decodes_active', 'Compressed bodies being inflated and parsed now (limits.decodeConcurrency).', sources.decodesActive);
    gauge('decodes_waiting', 'Compressed bodies waiting for a decode slot (limits.decodeQueue).', sources.decodesWaiting);
    // The process collectors install process-wide observers that cannot be removed: only a server that exposes them.
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: SERVER_METRIC_PREFIX });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** `GET /metrics` on its own listener; anything else is 404. */
export class MetricsListener {
  private readonly http: Server;

  constructor(
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
  ) {
    this.http = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text),
        (err: unknown) => {
          this.log.error({ err }, 'metrics exposition failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
        },
      );
    });
  }

  listen(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        const addr = this.http.address() as AddressInfo;
        const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        resolve(`http://${shown}:${addr.port}/metrics`);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.http.listening) {
        resolve();
        return;
      }
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}

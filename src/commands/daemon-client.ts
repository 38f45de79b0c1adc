/**
 * How the CLI finds and asks the running daemon: its loopback HTTP listener (config http.host/http.port, or
 * --http-port). The config file defaults to /etc/inbetweenies-gateway/gateway.yaml when it exists.
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { loadGatewayConfig, type GatewayConfig } from '../config/gateway-config.js';
import { UsageError } from './args.js';

export const DEFAULT_CONFIG_FILE = '/etc/inbetweenies-gateway/gateway.yaml';

export interface Target {
  readonly config: GatewayConfig;
  /** Base URL of the daemon's listener, or null when it is off. */
  readonly url: string | null;
  readonly configFile: string | undefined;
  /** `http.token` (or INBETWEENIES_HTTP_TOKEN), sent as `Authorization: Bearer`. */
  readonly token: string | undefined;
}

/** Loads the config (file, env, the given overrides) to learn the data dir and the HTTP port. */
export function resolveTarget(options: { config?: string; dataDir?: string; httpPort?: number; env?: NodeJS.ProcessEnv }): Target {
  const file = options.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  const config = loadGatewayConfig({ file, env: options.env ?? process.env, flags: { dataDir: options.dataDir, httpPort: options.httpPort } });
  const { host, port, token } = config.http;
  if (port === null) return { config, url: null, configFile: file, token };
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return { config, url: `http://${h.includes(':') ? `[${h}]` : h}:${port}`, configFile: file, token };
}

export interface DaemonAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** One request to the daemon. Rejects with `code: 'ECONNREFUSED'` etc. when nothing listens. */
export function askDaemon(url: string, path: string, options: { method?: 'GET' | 'POST'; body?: unknown; timeoutMs?: number; token?: string | undefined } = {}): Promise<DaemonAnswer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const auth: Record<string, string> = options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` };
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, url),
      {
        method: options.method ?? 'GET',
        headers: payload === undefined ? auth : { ...auth, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        timeout: options.timeoutMs ?? 3000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text) as unknown;
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${url} in ${options.timeoutMs ?? 3000} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** True for errors that mean "nobody listens there" (the daemon is not running, or its listener is off). */
export function isUnreachable(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH';
}

export function portFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`--http-port: expected an integer 1..65535, got ${JSON.stringify(value)}`);
  return n;
}

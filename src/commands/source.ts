/**
 * Where `status`, `devices` and `conflicts` read from, found the same way `sync` finds the daemon: `--data-dir DIR`
 * alone reads that store; otherwise the config (`--config FILE`, else /etc/inbetweenies-gateway/gateway.yaml when
 * present, else the defaults) and `--http-port N` name the daemon's listener, which is asked first; when nothing
 * answers there, the store the config names is read instead, and said so. Neither a daemon nor a store: a message
 * and exit 1 (a leftover ./data is never read silently).
 */
import { ConfigError, GatewayError } from '../errors.js';
import { openStoreReadOnly, storePath } from '../store/device-queries.js';
import type { StoreReader } from '../store/index.js';
import { askDaemon, isUnreachable, portFlag, resolveTarget } from './daemon-client.js';
import { DaemonStatusView } from './status-view.js';

export const SOURCE_OPTIONS = { config: { type: 'string' }, 'http-port': { type: 'string' }, 'data-dir': { type: 'string' } } as const;

export const SOURCE_HELP = `  --config FILE    gateway config (default /etc/inbetweenies-gateway/gateway.yaml if present): where the daemon
                   listens and where its store is
  --http-port N    ask the daemon on 127.0.0.1:N (overrides the config)
  --data-dir DIR   alone: read the store in DIR directly (works with or without the daemon)`;

export type Source =
  | {
      readonly kind: 'daemon';
      readonly url: string;
      readonly token: string | undefined;
      /** GET /status as answered (validated), and as sent. */
      readonly status: DaemonStatusView;
      readonly statusBody: unknown;
    }
  | {
      readonly kind: 'store';
      readonly reader: StoreReader;
      /** Why the store is read and not the daemon (null: it was named with --data-dir alone). */
      readonly note: string | null;
    };

/** The source, or the exit status after a message on stderr. */
export async function findSource(values: { config?: string | undefined; 'http-port'?: string | undefined; 'data-dir'?: string | undefined }): Promise<Source | number> {
  const dataDir = values['data-dir'];
  if (dataDir !== undefined && values.config === undefined && values['http-port'] === undefined) {
    return openStore(dataDir, null);
  }
  let target;
  try {
    target = resolveTarget({ config: values.config, dataDir, httpPort: portFlag(values['http-port']) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n(hint: run with sudo to read the config, or pass --http-port N or --data-dir DIR)\n`);
    return 2;
  }
  const store = target.config.dataDir;
  if (target.url === null) {
    const why = `the daemon's HTTP listener is off (http.port is null in ${target.configFile ?? 'the defaults'})`;
    return openStore(store, { why, note: "the daemon's listener is off", daemonUrl: null });
  }
  let answer;
  try {
    answer = await askDaemon(target.url, '/status', { token: target.token });
  } catch (err) {
    if (!isUnreachable(err)) throw err;
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'unreachable';
    return openStore(store, { why: `daemon not reachable at ${target.url} (${code})`, note: 'daemon not running', daemonUrl: target.url });
  }
  if (answer.status !== 200) {
    const hint = answer.status === 401 ? ' (set INBETWEENIES_HTTP_TOKEN, or read the config that holds http.token: sudo)' : '';
    process.stderr.write(`the daemon at ${target.url} answered ${answer.status}: ${describeError(answer.body)}${hint}\n`);
    return 1;
  }
  const parsed = DaemonStatusView.safeParse(answer.body);
  if (!parsed.success) {
    process.stderr.write(`unexpected /status answer from ${target.url}: ${parsed.error.issues[0]?.message ?? ''}\n`);
    return 1;
  }
  return { kind: 'daemon', url: target.url, token: target.token, status: parsed.data, statusBody: answer.body };
}

/** The first line `status`, `devices` and `conflicts` print: what they read. */
export function describeSource(source: Source): string {
  if (source.kind === 'daemon') return `daemon at ${source.url} (pid ${source.status.pid})`;
  return `store ${source.reader.path}${source.note === null ? '' : ` (${source.note})`}`;
}

/** Opens the store in `dataDir` read-only, or says why there is nothing to read (exit 1). */
function openStore(dataDir: string, fallback: { why: string; note: string; daemonUrl: string | null } | null): Source | number {
  try {
    const reader = openStoreReadOnly(dataDir);
    if (fallback) process.stderr.write(`${fallback.why}; reading the store in ${dataDir}\n`);
    return { kind: 'store', reader, note: fallback?.note ?? null };
  } catch (err) {
    if (!(err instanceof GatewayError) || err.code !== 'STORE') throw err;
    const daemon = fallback?.daemonUrl ? `no daemon at ${fallback.daemonUrl} and ` : '';
    process.stderr.write(`${daemon}no gateway store at ${storePath(dataDir)}: is the gateway running? (systemctl status inbetweenies-gateway; or pass --config FILE, --http-port N or --data-dir DIR)\n`);
    return 1;
  }
}

function describeError(body: unknown): string {
  if (typeof body === 'object' && body !== null && 'code' in body && 'message' in body) return `${String(body.code)}: ${String(body.message)}`;
  return JSON.stringify(body).slice(0, 200);
}

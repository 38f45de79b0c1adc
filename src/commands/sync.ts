/** `sync`: asks the running daemon to sync now (or to reconcile in full) and prints the cycle report. */
import { ConfigError } from '../errors.js';
import { parseCommandArgs, withUsage } from './args.js';
import { askDaemon, isUnreachable, portFlag, resolveTarget, DEFAULT_CONFIG_FILE } from './daemon-client.js';

const HELP = `usage: inbetweenies-gateway sync [--full] [--config FILE] [--http-port N] [--json]

Asks the running daemon to run a sync cycle now and prints what it pulled and pushed.
  --full           a full reconcile: pull everything from the server (last_sync null), reconcile deletes
  --config FILE    gateway config (default ${DEFAULT_CONFIG_FILE} if present): where the daemon listens
  --http-port N    the daemon's listener on 127.0.0.1:N (overrides the config)
  --json           the cycle report as JSON
Exit status: 0 the cycle succeeded, 1 it failed or the daemon is not reachable, 2 bad usage or configuration.`;

export async function syncCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { full: { type: 'boolean' }, config: { type: 'string' }, 'http-port': { type: 'string' }, json: { type: 'boolean' } });
    let target;
    try {
      target = resolveTarget({ config: values.config, httpPort: portFlag(values['http-port']) });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`${err.message}\n(hint: run with sudo to read the config, or pass --http-port N)\n`);
      return 2;
    }
    if (target.url === null) {
      process.stderr.write(`the daemon's HTTP listener is off (http.port is null in ${target.configFile ?? 'the defaults'}): pass --http-port N or set http.port\n`);
      return 1;
    }
    let answer;
    try {
      answer = await askDaemon(target.url, '/sync', { method: 'POST', body: { full: Boolean(values.full) }, timeoutMs: 10 * 60_000, token: target.token });
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      process.stderr.write(`the daemon is not reachable at ${target.url} (${(err as NodeJS.ErrnoException).code}): is it running? (systemctl status inbetweenies-gateway)\n`);
      return 1;
    }
    if (values.json) process.stdout.write(`${JSON.stringify(answer.body)}\n`);
    if (answer.status !== 200) {
      if (!values.json) process.stderr.write(`sync failed (${answer.status}): ${describe(answer.body)}\n`);
      return 1;
    }
    if (!values.json) process.stdout.write(`sync ok: ${describe(answer.body)}\n`);
    return 0;
  });
}

function describe(body: unknown): string {
  if (typeof body !== 'object' || body === null) return String(body);
  const b = body as Record<string, unknown>;
  if (b.type === 'error') return `${String(b.code)}: ${String(b.message)}`;
  const keys = ['pulled', 'pushed', 'applied', 'conflicts', 'rejected', 'pages', 'fullResync', 'durationMs'];
  return keys.filter((k) => k in b).map((k) => `${k} ${String(b[k])}`).join(', ');
}

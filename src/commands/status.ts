/**
 * `status` (issue 5 §5). With --data-dir alone it reads the store exactly as before (issue 3 interface, works while
 * the daemon runs). Otherwise it asks the running daemon over its loopback listener (broker clients, health, jobs
 * too), and falls back to the store named by the config when the daemon does not answer.
 */
import { ConfigError } from '../errors.js';
import { parseCommandArgs, withUsage } from './args.js';
import { askDaemon, isUnreachable, portFlag, resolveTarget, DEFAULT_CONFIG_FILE } from './daemon-client.js';

const HELP = `usage: inbetweenies-gateway status [--config FILE] [--http-port N] [--data-dir DIR] [--json]

Shows devices, pending changes and the age of the oldest, the last sync and its result, online/offline, the last
error; from the running daemon also MQTT clients, health and scheduled jobs.
  --config FILE    gateway config (default ${DEFAULT_CONFIG_FILE} if present): where the daemon listens
  --http-port N    ask the daemon on 127.0.0.1:N (overrides the config)
  --data-dir DIR   alone: read the store in DIR directly (works with or without the daemon)
  --json           one JSON object, for scripts
Exit status: 0 ok, 1 the daemon answered but is unhealthy, 2 bad usage or configuration.`;

const OPTIONS = { config: { type: 'string' }, 'http-port': { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' } } as const;

export async function statusCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, OPTIONS);
    if (values['data-dir'] !== undefined && values.config === undefined && values['http-port'] === undefined) {
      return (await import('./inspect.js')).statusCommand(argv);
    }
    let target;
    try {
      target = resolveTarget({ config: values.config, dataDir: values['data-dir'], httpPort: portFlag(values['http-port']) });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`${err.message}\n(hint: run with sudo to read the config, or pass --http-port N or --data-dir DIR)\n`);
      return 2;
    }
    const storeArgs = ['--data-dir', target.config.dataDir, ...(values.json ? ['--json'] : [])];
    if (target.url === null) return (await import('./inspect.js')).statusCommand(storeArgs);
    let answer;
    try {
      answer = await askDaemon(target.url, '/status');
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      process.stderr.write(`daemon not reachable at ${target.url} (${(err as NodeJS.ErrnoException).code}); reading the store in ${target.config.dataDir}\n`);
      return (await import('./inspect.js')).statusCommand(storeArgs);
    }
    if (answer.status !== 200) {
      process.stderr.write(`daemon answered ${answer.status}: ${JSON.stringify(answer.body)}\n`);
      return 1;
    }
    const view = await import('./status-view.js');
    const parsed = view.DaemonStatusView.safeParse(answer.body);
    if (!parsed.success) {
      process.stderr.write(`unexpected /status answer from ${target.url}: ${parsed.error.issues[0]?.message ?? ''}\n`);
      return 1;
    }
    process.stdout.write(values.json ? `${JSON.stringify(answer.body)}\n` : `${view.formatDaemonStatus(parsed.data)}\n`);
    return parsed.data.health.healthy ? 0 : 1;
  });
}

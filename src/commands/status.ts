/**
 * `status`: asks the running daemon over its HTTP listener (health, MQTT clients, jobs too), found as
 * `sync` finds it; when nothing answers there it reads the store the config names, and `--data-dir DIR` alone reads
 * that store (the original interface; it works while the daemon runs). The first line says which (source.ts).
 */
import { parseCommandArgs, withUsage } from './args.js';
import { formatStoreStatus } from './inspect.js';
import { describeSource, findSource, SOURCE_HELP, SOURCE_OPTIONS } from './source.js';
import { formatDaemonStatus } from './status-view.js';

const HELP = `usage: inbetweenies-gateway status [--config FILE] [--http-port N] [--data-dir DIR] [--json]

Shows devices, pending changes and the age of the oldest, the last sync and its result, online/offline, the last
error; from the running daemon also the version, MQTT clients, health and scheduled jobs. The first line says what
was read: "daemon at URL (pid N)" or "store PATH (daemon not running)" (with --json, on stderr).
${SOURCE_HELP}
  --json           one JSON object, for scripts
Exit status: 0 ok, 1 the daemon answered but is unhealthy, or there is neither a daemon nor a store,
2 bad usage or configuration.`;

export async function statusCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, { ...SOURCE_OPTIONS, json: { type: 'boolean' } });
    const source = await findSource(values);
    if (typeof source === 'number') return source;
    const head = describeSource(source);
    if (values.json) process.stderr.write(`${head}\n`);
    if (source.kind === 'daemon') {
      process.stdout.write(values.json ? `${JSON.stringify(source.statusBody)}\n` : `${head}\n${formatDaemonStatus(source.status)}\n`);
      return source.status.health.healthy ? 0 : 1;
    }
    try {
      const status = source.reader.status();
      process.stdout.write(values.json ? `${JSON.stringify(status)}\n` : `${head}\n${formatStoreStatus(status, source.reader.syncState.get('server_profile') ?? null)}\n`);
      return 0;
    } finally {
      source.reader.close();
    }
  });
}

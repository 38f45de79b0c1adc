/**
 * `server` under systemd: runs the project's sync server (src/server/cli.ts) and tells systemd READY=1
 * once it listens, WATCHDOG=1 while its event loop runs, STOPPING=1 on SIGTERM. Outside systemd it adds nothing.
 */
import { createLogger } from '../log.js';
import { SystemdNotifier } from '../daemon/notify.js';
import { asksForHelp } from './args.js';

const HELP = `usage: inbetweenies-gateway server [--config FILE] [--host H] [--port N] [--data-dir DIR]
       inbetweenies-gateway server add-client --data-dir DIR --home HOME_ID [--config FILE]

Runs the FunkyGibbon-compatible sync server (POST /api/v1/sync/*, /api/v1/auth/*, GET /api/v1/health) until SIGTERM
or SIGINT.
  --config FILE    YAML configuration (see config/server.example.yaml)
  --host H         listen address (default 127.0.0.1)
  --port N         listen port (default 8000; 0 picks a free one)
  --data-dir DIR   where the server's database lives (default ./data)

add-client creates a client credential for the home HOME_ID and prints one JSON object
{"client_id","client_secret","home_id"}: the pair configures one gateway (or app).
Exit status: 0 ok, 1 runtime failure (e.g. the port is in use), 2 bad usage or configuration.`;

export async function serverCommand(argv: string[]): Promise<number> {
  const args = argv[0] === 'server' ? argv.slice(1) : argv;
  if (asksForHelp(args)) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const { runServerCommand } = await import('../server/cli.js');
  if (args[0] === 'add-client' || !process.env.NOTIFY_SOCKET) return runServerCommand(args);
  const notifier = new SystemdNotifier({ logger: createLogger({ name: 'inbetweenies-server', level: 'warn' }) });
  let watchdog: NodeJS.Timeout | undefined;
  const onStop = (): void => {
    clearInterval(watchdog);
    void notifier.stopping();
  };
  process.once('SIGTERM', onStop);
  process.once('SIGINT', onStop);
  try {
    return await runServerCommand(args, {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
      onListening: (url) => {
        void notifier.ready(`listening on ${url}`);
        const wd = notifier.watchdogMs;
        if (wd !== null) {
          watchdog = setInterval(() => void notifier.watchdog(), Math.max(100, wd / 2));
          watchdog.unref();
        }
      },
    });
  } finally {
    clearInterval(watchdog);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    await notifier.flush();
  }
}

/**
 * `server` under systemd (issue 5 §1): runs the project's sync server (src/server/cli.ts) and tells systemd READY=1
 * once it listens, WATCHDOG=1 while its event loop runs, STOPPING=1 on SIGTERM. Outside systemd it adds nothing.
 */
import { createLogger } from '../log.js';
import { SystemdNotifier } from '../daemon/notify.js';

export async function serverCommand(argv: string[]): Promise<number> {
  const { runServerCommand } = await import('../server/cli.js');
  const args = argv[0] === 'server' ? argv.slice(1) : argv;
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

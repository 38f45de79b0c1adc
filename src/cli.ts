#!/usr/bin/env node
/**
 * inbetweenies-gateway command line (docs/operations.md §Command line): run | server | status | sync | devices |
 * conflicts | backup | check-config | demo | simulate | app. Each command lives in its own module; this file only
 * dispatches.
 */
// Commands are imported lazily: the daemon's resident memory must not carry the server, the simulator or the demo.

const USAGE = `usage: inbetweenies-gateway <command> [options]

commands:
  run            run the gateway daemon (broker + store + sync)
                 [--config FILE] [--data-dir DIR] [--mqtt-host H] [--mqtt-port N] [--server-url URL]
                 [--client-id ID] [--client-secret S] [--http-port N]
  server         run the FunkyGibbon-compatible sync server
                 [--config FILE] [--host H] [--port N] [--data-dir DIR]
  server add-client --data-dir DIR --home HOME_ID
                 create a client credential; prints {"client_id","client_secret","home_id"}
  status         [--config FILE | --http-port N | --data-dir DIR] [--json]
                 health, MQTT clients, devices, pending changes, last sync, online/offline, last error, jobs
  sync           [--full] [--config FILE | --http-port N] [--json]   ask the running daemon to sync now
  devices        [--config FILE | --http-port N | --data-dir DIR] [--json]   devices with their current state
  conflicts      [--limit N] [--config FILE | --http-port N | --data-dir DIR] [--json]
                 recent conflicts and rejected changes, with both versions
  backup         FILE [--data-dir DIR | --config FILE]   a consistent copy of the store, while the daemon runs
  check-config   FILE [--print] [--json]   validate a gateway config file; lists every problem
  hash-password  [--cost N] [--json] < password   scrypt hash for a broker user's password
  simulate       [--url mqtt://127.0.0.1:1883] [--rate N]   run ~30 simulated devices
  demo           server + gateway + simulator, with an offline spell, end to end
  app            set | get | watch: drive the sync server as a phone app would
                 app set [connection] DEVICE_ID JSON   merge attributes into a device's state on the server
                 app get [connection] DEVICE_ID        print a device's state
                 app watch [connection]                print each change of the home as it arrives
                 connection: [--server-url URL] [--client-id ID] [--client-secret S] (or INBETWEENIES_* variables)

  --version      print the version (also after any command)
Run 'inbetweenies-gateway <command> --help' for a command's options.
Exit status: 0 ok, 1 failure (unhealthy, unreachable, could not start), 2 bad usage or configuration.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // `--version` anywhere before a lone `--`, with or without a command: the version and nothing else.
  const flags = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (flags.includes('--version') || command === '-V') {
    const { readPackageInfo } = await import('./version.js');
    process.stdout.write(`${readPackageInfo().version}\n`);
    return 0;
  }
  switch (command) {
    case 'run':
      return (await import('./commands/run.js')).runGatewayCommand(rest);
    case 'server':
      return (await import('./commands/server.js')).serverCommand(rest);
    case 'status':
      return (await import('./commands/status.js')).statusCommand(rest);
    case 'sync':
      return (await import('./commands/sync.js')).syncCommand(rest);
    case 'hash-password':
      return (await import('./commands/hash-password.js')).hashPasswordCommand(rest);
    case 'devices':
      return (await import('./commands/devices.js')).devicesCommand(rest);
    case 'conflicts':
      return (await import('./commands/conflicts.js')).conflictsCommand(rest);
    case 'backup':
      return (await import('./commands/backup.js')).backupCommand(rest);
    case 'check-config':
      return (await import('./commands/check-config.js')).checkConfigCommand(rest);
    case 'simulate':
      return (await import('./commands/simulate.js')).simulateCommand(rest);
    case 'demo':
      return (await import('./commands/demo.js')).demoCommand(rest);
    case 'app':
      return (await import('./commands/app.js')).appCommand(rest);
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    case undefined:
      process.stderr.write(`${USAGE}\n`);
      return 2;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

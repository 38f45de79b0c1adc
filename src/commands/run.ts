/** `run`: the gateway daemon. Flags override the file; environment overrides it for secrets. */
import { loadGatewayConfig, type GatewayConfig, type GatewayFlags } from '../config/gateway-config.js';
import { GatewayDaemon } from '../daemon/gateway-daemon.js';
import { assertConfigSecretsPrivate } from '../config/secret-files.js';
import { ConfigError, GatewayError } from '../errors.js';
import { createLogger, cycleLogLevel } from '../log.js';
import { intFlag, parseCommandArgs, withUsage } from './args.js';
import { describeStartFailure } from './start-failure.js';

const HELP = `usage: inbetweenies-gateway run [options]

Runs the gateway: embedded MQTT broker, SQLite store, sync with the FunkyGibbon server.
  --config FILE          YAML configuration (default: built-in defaults; see config/gateway.example.yaml)
  --data-dir DIR         where the store lives (default ./data)
  --mqtt-host H          broker listen address (default 0.0.0.0)
  --mqtt-port N          broker port (default 1883; 0 picks a free one)
  --server-url URL       FunkyGibbon server (default http://127.0.0.1:8000)
  --client-id ID         client credential (or INBETWEENIES_CLIENT_ID)
  --client-secret S      client secret (better: INBETWEENIES_CLIENT_SECRET)
  --http-port N          status page, health, metrics and control on 127.0.0.1 (default 9180; 0 picks a free one)
Stops gracefully on SIGTERM or SIGINT. SIGUSR2 steps the log level: info → debug → trace → info.
Exit status: 0 stopped cleanly, 1 could not start (e.g. a port in use) or could not stop in time,
2 bad usage or invalid configuration.`;

const STOP_BOUND_MS = 15_000;
/** After a failed start, how long the process may take to wind down by itself before it is ended. */
const START_FAILURE_EXIT_MS = 500;

export async function runGatewayCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values } = parseCommandArgs(argv, {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      'mqtt-host': { type: 'string' },
      'mqtt-port': { type: 'string' },
      'server-url': { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'http-port': { type: 'string' },
    });
    const flags: GatewayFlags = {
      dataDir: values['data-dir'],
      mqttHost: values['mqtt-host'],
      mqttPort: intFlag('mqtt-port', values['mqtt-port']),
      serverUrl: values['server-url'],
      clientId: values['client-id'],
      clientSecret: values['client-secret'],
      httpPort: intFlag('http-port', values['http-port']),
    };
    let config: GatewayConfig;
    try {
      config = loadGatewayConfig({ file: values.config, env: process.env, flags });
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        return 2;
      }
      throw err;
    }
    try {
      if (values.config !== undefined) assertConfigSecretsPrivate(values.config);
    } catch (err) {
      if (!(err instanceof GatewayError) || err.code !== 'INSECURE_PERMISSIONS') throw err;
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    return runDaemon(config);
  });
}

async function runDaemon(config: GatewayConfig): Promise<number> {
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty });
  const daemon = new GatewayDaemon({ config, logger });
  try {
    await daemon.start();
  } catch (err) {
    const problem = describeStartFailure(err, config);
    if (problem === undefined) throw err;
    process.stderr.write(`${problem}\n`);
    // Whatever a half-started component left behind (a timer, a socket) must not keep a failed daemon running.
    setTimeout(() => process.exit(1), START_FAILURE_EXIT_MS).unref();
    return 1;
  }
  const onUsr2 = (): void => void cycleLogLevel(logger, config.log.level);
  process.on('SIGUSR2', onUsr2);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.off('SIGUSR2', onUsr2);
  logger.info({ signal }, 'stopping');
  const bound = setTimeout(() => {
    logger.error({ boundMs: STOP_BOUND_MS }, 'graceful stop took too long; exiting (the store is consistent: WAL)');
    process.exit(1);
  }, STOP_BOUND_MS);
  bound.unref();
  await daemon.stop();
  clearTimeout(bound);
  return 0;
}

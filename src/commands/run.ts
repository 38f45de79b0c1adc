/** `run`: the gateway daemon (issue 3 §Interfaces). Flags override the file; environment overrides it for secrets. */
import { loadGatewayConfig, type GatewayFlags } from '../config/gateway-config.js';
import { GatewayDaemon } from '../daemon/gateway-daemon.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../log.js';
import { intFlag, parseCommandArgs, withUsage } from './args.js';

const HELP = `usage: inbetweenies-gateway run [options]

Runs the gateway: embedded MQTT broker, SQLite store, sync with the FunkyGibbon server.
  --config FILE          YAML configuration (default: built-in defaults; see config/gateway.example.yaml)
  --data-dir DIR         where the store lives (default ./data)
  --mqtt-host H          broker listen address (default 0.0.0.0)
  --mqtt-port N          broker port (default 1883; 0 picks a free one)
  --server-url URL       FunkyGibbon server (default http://127.0.0.1:8000)
  --client-id ID         client credential (or INBETWEENIES_CLIENT_ID)
  --client-secret S      client secret (better: INBETWEENIES_CLIENT_SECRET)
  --http-port N          health and metrics listener on 127.0.0.1 (default off)
Stops gracefully on SIGTERM or SIGINT.`;

const STOP_BOUND_MS = 15_000;

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
    let config;
    try {
      config = loadGatewayConfig({ file: values.config, env: process.env, flags });
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        return 2;
      }
      throw err;
    }
    const logger = createLogger({ level: config.log.level, pretty: config.log.pretty });
    const daemon = new GatewayDaemon({ config, logger });
    await daemon.start();
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    logger.info({ signal }, 'stopping');
    const bound = setTimeout(() => {
      logger.error({ boundMs: STOP_BOUND_MS }, 'graceful stop took too long; exiting (the store is consistent: WAL)');
      process.exit(1);
    }, STOP_BOUND_MS);
    bound.unref();
    await daemon.stop();
    clearTimeout(bound);
    return 0;
  });
}

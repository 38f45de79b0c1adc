/**
 * `server` sub-commands (wired into src/cli.ts by the lead):
 *   server [--config FILE] [--host H] [--port N] [--data-dir DIR]   start the server on SQLite (flags override the file)
 *   server --database-url URL [--host H] [--port N]                  start the server on PostgreSQL (several may share it)
 *   server add-client (--data-dir DIR | --database-url URL) --home HOME_ID   print one JSON credential object
 * INBETWEENIES_DATABASE_URL stands for --database-url when neither --database-url nor --data-dir is given.
 * Exit codes: 0 ok, 2 bad usage or bad configuration, 1 runtime failure.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';
import { createLogger } from '../log.js';
import { loadServerConfig, type ServerConfigInput } from './config.js';
import { redactDatabaseUrl } from './pg/connect.js';
import { openSyncServer } from './server.js';
import { ServerStore } from './store/index.js';
import { STORE_COMMANDS, STORE_USAGE, addPgClient, runStoreCommand } from './store-cli.js';

export interface CommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Stops a running server like SIGTERM does (tests). */
  readonly signal?: AbortSignal;
  /** Called with the URL once the server listens (tests). */
  readonly onListening?: (url: string) => void;
}

const defaultIo: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

const USAGE = `usage:
  inbetweenies-gateway server [--config FILE] [--host H] [--port N] [--data-dir DIR]
  inbetweenies-gateway server --database-url URL [--config FILE] [--host H] [--port N]
  inbetweenies-gateway server add-client --data-dir DIR --home HOME_ID
${STORE_USAGE}`;

/** Runs `server …`; `argv` are the arguments after `server` (a leading "server" is tolerated). */
export async function runServerCommand(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  const args = argv[0] === 'server' ? argv.slice(1) : argv;
  try {
    if (args[0] === 'add-client') return await addClientCommand(args.slice(1), io);
    if (args[0] !== undefined && STORE_COMMANDS.has(args[0])) return await runStoreCommand(args[0], args.slice(1), io);
    return await serveCommand(args, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`${err.message}\n`);
      return 2;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`${err.message}\n${USAGE}`);
      return 2;
    }
    if (err instanceof RangeError) {
      io.stderr(`${err.message}\n${USAGE}`);
      return 2;
    }
    io.stderr(`server failed: ${(err as Error).message}\n`);
    return 1;
  }
}

async function addClientCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'data-dir': { type: 'string' }, 'database-url': { type: 'string' }, home: { type: 'string' }, config: { type: 'string' } },
    strict: true,
  });
  const databaseUrl = values['database-url'] ?? (values['data-dir'] === undefined ? process.env.INBETWEENIES_DATABASE_URL : undefined);
  if (databaseUrl !== undefined) {
    if (values.home === undefined || values.home.length === 0) {
      io.stderr(`--home HOME_ID is required\n${USAGE}`);
      return 2;
    }
    io.stdout(`${await addPgClient(databaseUrl, values.home)}\n`);
    return 0;
  }
  const overrides: ServerConfigInput = {};
  if (values['data-dir'] !== undefined) overrides.dataDir = values['data-dir'];
  const config = loadServerConfig(values.config, overrides);
  if (values.home === undefined || values.home.length === 0) {
    io.stderr(`--home HOME_ID is required\n${USAGE}`);
    return 2;
  }
  const store = new ServerStore({ dataDir: config.dataDir, clock: Date.now });
  try {
    io.stdout(`${JSON.stringify(store.accounts.addClient(values.home))}\n`);
  } finally {
    store.close();
  }
  return 0;
}

async function serveCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'database-url': { type: 'string' },
    },
    strict: true,
  });
  if (values['database-url'] !== undefined && values['data-dir'] !== undefined) {
    io.stderr(`give either --database-url (PostgreSQL) or --data-dir (SQLite), not both\n${USAGE}`);
    return 2;
  }
  const overrides: ServerConfigInput = {};
  if (values.host !== undefined) overrides.host = values.host;
  if (values['data-dir'] !== undefined) overrides.dataDir = values['data-dir'];
  // The environment keeps the password out of `ps`; an explicit --data-dir means SQLite whatever it says.
  const databaseUrl = values['database-url'] ?? (values['data-dir'] === undefined ? process.env.INBETWEENIES_DATABASE_URL : undefined);
  if (databaseUrl !== undefined) overrides.database = { url: databaseUrl };
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port > 65535) {
      io.stderr(`--port: expected an integer 0..65535, got ${JSON.stringify(values.port)}\n`);
      return 2;
    }
    overrides.port = port;
  }
  const config = loadServerConfig(values.config, overrides);
  const logger = createLogger({ level: config.log.level, name: 'inbetweenies-server' });
  const server = await openSyncServer({ config, logger });
  const { url, metricsUrl } = await server.listen();
  const store = config.database.url === undefined ? { dataDir: config.dataDir } : { database: redactDatabaseUrl(config.database.url) };
  logger.info(
    { url, ...store, hmacRequired: config.hmac.required, tls: config.tls !== undefined, metricsUrl },
    `listening on ${url}`,
  );
  io.onListening?.(url);
  // SIGHUP: read the TLS certificate and key again (renewal) without dropping connections.
  const reload = (): void => {
    server.reloadTls();
  };
  process.on('SIGHUP', reload);
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'shutting down');
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', reload);
      io.signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => stop('abort');
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (io.signal?.aborted) stop('abort');
    else io.signal?.addEventListener('abort', onAbort);
  });
  await server.close();
  return 0;
}

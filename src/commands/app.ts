/**
 * `app set | get | watch`: drive the sync server as a phone app would (bearer token, HMAC, gzip, live waits), without
 * writing a client. `set` merges attributes into a device's state (read, merge, push), `get` prints it, `watch`
 * prints every change of the home as it arrives. Exit codes: 0 ok, 1 runtime failure, 2 usage.
 */
import { setDeviceState, readDeviceState } from '../app/device-state.js';
import { changeLine, stateJson, stateLine } from '../app/format.js';
import { AppSession } from '../app/session.js';
import { watchHome } from '../app/watch.js';
import { ConfigError, GatewayError } from '../errors.js';
import { createLogger } from '../log.js';
import { MAX_ID_LENGTH } from '../protocol/index.js';
import { intFlag, parseCommandArgs, UsageError, withUsage } from './args.js';

const DEFAULT_SERVER_URL = 'http://127.0.0.1:8000';
/** Log lines (clock steps, transport warnings) go to stderr; stdout carries only the output. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const HELP = `usage:
  inbetweenies-gateway app set   [connection] [--json] DEVICE_ID JSON
  inbetweenies-gateway app get   [connection] [--json] DEVICE_ID
  inbetweenies-gateway app watch [connection] [--json] [--initial] [--wait S]

Drives the sync server as a phone app would (bearer token, HMAC, gzip, live waits):
  set     merges the JSON object's attributes into the device's state on the server (read, merge, push: the other
          attributes are kept) and prints the result, e.g.  app set plug-1 '{"power":"on"}'
  get     prints the device's state as the server holds it
  watch   prints each change of the home as it arrives, one line each:
          <updated_at> <entity_type> <entity_id> <operation> <data>; reconnects by itself; Ctrl-C stops it
connection:
  --server-url URL     the sync server (default ${DEFAULT_SERVER_URL}; env INBETWEENIES_SERVER_URL)
  --client-id ID       a client of the home (env INBETWEENIES_CLIENT_ID); create one with 'server add-client'
  --client-secret S    its secret (env INBETWEENIES_CLIENT_SECRET; a flag is visible in ps: prefer the variable)
options:
  --json               set/get: one JSON object; watch: NDJSON, each line a change as the server sent it
  --initial            watch: print the home's current entities first
  --wait S             watch: seconds each live wait may be held (default 25; the server caps it)
Exit status: 0 ok (watch: stopped by Ctrl-C or SIGTERM), 1 runtime failure (unreachable, refused, conflict), 2 bad usage.`;

const OPTIONS = {
  'server-url': { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  json: { type: 'boolean' },
  initial: { type: 'boolean' },
  wait: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof OPTIONS>>['values'];

export async function appCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${HELP}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'set' && sub !== 'get' && sub !== 'watch') {
    process.stderr.write(`unknown app command ${JSON.stringify(sub)}\n\n${HELP}\n`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseCommandArgs(rest, OPTIONS, true);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${HELP}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  return withUsage(HELP, rest, async () => {
    const session = openSession(values);
    try {
      if (sub === 'set') return await runSet(session, positionals, Boolean(values.json));
      if (sub === 'get') return await runGet(session, positionals, Boolean(values.json));
      if (positionals.length > 0) throw new UsageError(`app watch takes no positional arguments, got ${JSON.stringify(positionals)}`);
      return await runWatch(session, values);
    } catch (err) {
      if (!(err instanceof GatewayError) || err instanceof UsageError) throw err;
      process.stderr.write(`app ${sub} failed: ${err.code}: ${err.message}\n`);
      return 1;
    } finally {
      await session.close();
    }
  });
}

function openSession(values: Values): AppSession {
  const serverUrl = values['server-url'] ?? process.env.INBETWEENIES_SERVER_URL ?? DEFAULT_SERVER_URL;
  const clientId = values['client-id'] ?? process.env.INBETWEENIES_CLIENT_ID;
  const clientSecret = values['client-secret'] ?? process.env.INBETWEENIES_CLIENT_SECRET;
  if (!clientId) throw new UsageError('a client id is needed: --client-id ID or INBETWEENIES_CLIENT_ID (create one with: server add-client)');
  if (!clientSecret) throw new UsageError('a client secret is needed: INBETWEENIES_CLIENT_SECRET or --client-secret S');
  const level = LOG_LEVELS.find((l) => l === process.env.INBETWEENIES_LOG_LEVEL) ?? 'error';
  const logger = createLogger({ level, name: 'inbetweenies-app', destination: process.stderr });
  try {
    return new AppSession({ serverUrl, clientId, clientSecret, logger });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`--server-url: expected an http(s) URL, got ${JSON.stringify(serverUrl)}`);
    throw err;
  }
}

function deviceIdOf(positional: string | undefined): string {
  if (positional === undefined || positional.length === 0 || positional.length > MAX_ID_LENGTH) {
    throw new UsageError(`DEVICE_ID: expected a device id of 1–${MAX_ID_LENGTH} characters, got ${JSON.stringify(positional ?? null)}`);
  }
  return positional;
}

function attributesOf(text: string | undefined): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`JSON: expected a JSON object of attributes such as '{"power":"on"}', got ${JSON.stringify(text ?? null)}`);
  }
  return Object.fromEntries(Object.entries(value));
}

async function runSet(session: AppSession, positionals: string[], json: boolean): Promise<number> {
  if (positionals.length !== 2) throw new UsageError(`app set takes DEVICE_ID and JSON, got ${positionals.length} argument(s)`);
  const deviceId = deviceIdOf(positionals[0]);
  const attributes = attributesOf(positionals[1]);
  const { entry, state, conflict } = await setDeviceState(session, deviceId, attributes);
  if (json) process.stdout.write(`${JSON.stringify({ ...entry, state })}\n`);
  if (entry.status === 'applied') {
    if (!json) process.stdout.write(`${entry.entity_id}: applied ${JSON.stringify(state)}\n`);
    return 0;
  }
  const why = entry.error ? `${entry.error.code}: ${entry.error.message}` : `the server holds a newer version (${conflict?.reason ?? 'conflict'}); nothing changed`;
  process.stderr.write(`${entry.entity_id}: ${entry.status}: ${why}\n`);
  return 1;
}

async function runGet(session: AppSession, positionals: string[], json: boolean): Promise<number> {
  if (positionals.length !== 1) throw new UsageError(`app get takes DEVICE_ID, got ${positionals.length} argument(s)`);
  const deviceId = deviceIdOf(positionals[0]);
  const state = await readDeviceState(session, deviceId);
  if (state === undefined) {
    process.stderr.write(`no state for device ${JSON.stringify(deviceId)} on the server (in this client's home)\n`);
    return 1;
  }
  process.stdout.write(`${json ? JSON.stringify(stateJson(state)) : stateLine(state)}\n`);
  return 0;
}

async function runWatch(session: AppSession, values: Values): Promise<number> {
  const waitSeconds = intFlag('wait', values.wait, 1, 3600);
  const json = Boolean(values.json);
  const stop = new AbortController();
  const onSignal = (): void => {
    stop.abort();
    void session.close(); // aborts the held wait at once
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await watchHome({
      session,
      initial: Boolean(values.initial),
      signal: stop.signal,
      ...(waitSeconds === undefined ? {} : { waitSeconds }),
      onChange: (change) => process.stdout.write(`${json ? JSON.stringify(change) : changeLine(change)}\n`),
      onNote: (text) => process.stderr.write(`${text}\n`),
    });
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Logging (pino): JSON to stdout for journald, pretty in a terminal (one line per event). Components receive a logger
 * and derive `log.child({ module })`; errors are logged as `{ err }`. Secrets are redacted by path. The level can be
 * changed at run time (cycleLogLevel, on SIGUSR2): children without a level of their own follow their root.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'client_secret',
  'clientSecret',
  'access_token',
  'refresh_token',
  'accessToken',
  'refreshToken',
  'password',
  'secret',
  '*.client_secret',
  '*.clientSecret',
  '*.access_token',
  '*.refresh_token',
  '*.password',
  '*.secret',
  'server.token',
  'headers.authorization',
  'req.headers.authorization',
];

export interface LoggerOptions {
  readonly level?: LevelWithSilent;
  /** Pretty-print (pino-pretty); defaults to whether stdout is a terminal. */
  readonly pretty?: boolean;
  readonly name?: string;
  /** Where JSON lines go; defaults to stdout. Tests pass a stream to capture output. */
  readonly destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const base = { level, name: options.name ?? 'inbetweenies-gateway', redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (options.destination) return pino(base, options.destination);
  const pretty = options.pretty ?? Boolean(process.stdout.isTTY);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: prettyOptions(Boolean(process.stdout.isTTY)) } });
  }
  return pino(base);
}

/** pino-pretty: one line per event (fields inline), time of day, no pid or hostname; colours only on a terminal. */
export function prettyOptions(colorize: boolean): Record<string, unknown> {
  return { colorize, translateTime: 'SYS:HH:MM:ss.l', singleLine: true, ignore: 'pid,hostname' };
}

const VERBOSITY: readonly LevelWithSilent[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'];

/**
 * The levels SIGUSR2 steps through: from the configured level to more verbose ones, then back; from `info`:
 * info → debug → trace → info. A configured `trace` alternates with `info`.
 */
export function levelCycle(base: LevelWithSilent): readonly LevelWithSilent[] {
  const from = VERBOSITY.indexOf(base);
  const louder = VERBOSITY.slice(Math.max(from + 1, VERBOSITY.indexOf('info'))).filter((l) => l !== base);
  return louder.length > 0 ? [base, ...louder] : [base, 'info'];
}

/** Sets the next level of the cycle on `logger` and says so at warn (seen at any level up to warn). */
export function cycleLogLevel(logger: Logger, base: LevelWithSilent, reason = 'SIGUSR2'): { from: string; to: LevelWithSilent } {
  const cycle = levelCycle(base);
  const from = logger.level;
  const i = cycle.indexOf(from as LevelWithSilent);
  const to = cycle[(i + 1) % cycle.length] ?? base;
  // Said at warn, before the change when the new level would hide it (back to a configured error or silent).
  const quiet = VERBOSITY.indexOf(to) < VERBOSITY.indexOf('warn');
  if (quiet) logger.warn({ from, to, reason }, `log level changed to ${to}`);
  logger.level = to;
  if (!quiet) logger.warn({ from, to, reason }, `log level changed to ${to}`);
  return { from, to };
}

/** A logger that writes nothing, for unit tests that do not inspect logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Logging (pino): JSON to stdout for journald, pretty in a terminal. Components receive a logger and derive
 * `log.child({ module })`; errors are logged as `{ err }`. Secrets are redacted by path.
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
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base);
}

/** A logger that writes nothing, for unit tests that do not inspect logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Shared argument parsing for commands: node:util parseArgs with strict checking and helpful errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GatewayError } from '../errors.js';

export class UsageError extends GatewayError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCommandArgs<T extends Options>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Parses an integer flag, saying what was expected and what was given. */
export function intFlag(name: string, value: string | undefined, min = 0, max = 65535): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name}: expected an integer ${min}..${max}, got ${JSON.stringify(value)}`);
  return n;
}

/** Whether the arguments ask for help (`--help` / `-h` anywhere wins over any other problem with them). */
export function asksForHelp(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--help' || a === '-h');
}

/**
 * Runs a command body (which parses its arguments with parseCommandArgs): `--help` prints the help on stdout and
 * exits 0; a usage error (an unknown option, a bad value) prints the message and the help on stderr and exits 2.
 */
export async function withUsage(help: string, argv: readonly string[], body: () => Promise<number>): Promise<number> {
  if (asksForHelp(argv)) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${help}\n`);
      return 2;
    }
    throw err;
  }
}

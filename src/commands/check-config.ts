/** `check-config FILE` (issue 5 §Interfaces): exit 0 for a valid file, non-zero listing every problem with its path. */
import { loadGatewayConfig, redactConfig } from '../config/gateway-config.js';
import { ConfigError } from '../errors.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const HELP = `usage: inbetweenies-gateway check-config FILE [--print]

Validates a gateway configuration file against the schema and lists every problem with its path.
  --print   also print the effective configuration (secrets redacted) as JSON`;

export async function checkConfigCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values, positionals } = parseCommandArgs(argv, { print: { type: 'boolean' } }, true);
    const file = positionals[0];
    if (!file || positionals.length > 1) throw new UsageError('check-config: expected exactly one FILE');
    try {
      const config = loadGatewayConfig({ file, env: process.env });
      process.stdout.write(`${file}: OK\n`);
      if (values.print) process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\n`);
      return 0;
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${file}: ${err.problems.length} problem(s)\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
        return 1;
      }
      throw err;
    }
  });
}

/**
 * `check-config FILE`: exit 0 for a valid file, 1 listing every problem with its path, its line in the file, what is
 * allowed and what was given (a typo'd key gets the nearest known one). `--json` prints one JSON object instead.
 */
import { loadGatewayConfig, redactConfig, type GatewayConfig } from '../config/gateway-config.js';
import { GatewayConfigError, type ConfigProblem } from '../config/explain.js';
import { ConfigError } from '../errors.js';
import { parseCommandArgs, withUsage, UsageError } from './args.js';

const HELP = `usage: inbetweenies-gateway check-config FILE [--print] [--json]

Validates a gateway configuration file against the schema and lists every problem: its path, its line and column in
the file, what is allowed and what was given; an unknown key gets the nearest known one ("did you mean port?").
Environment variables (INBETWEENIES_*) are applied as the daemon would.
  --print   also print the effective configuration (secrets redacted)
  --json    one JSON object on stdout: {"file","valid","problems":[{"path","line","column","message"}]}
            (with --print, also "config")
Exit status: 0 valid, 1 problems found, 2 bad usage.`;

export async function checkConfigCommand(argv: string[]): Promise<number> {
  return withUsage(HELP, argv, async () => {
    const { values, positionals } = parseCommandArgs(argv, { print: { type: 'boolean' }, json: { type: 'boolean' } }, true);
    const file = positionals[0];
    if (!file || positionals.length > 1) throw new UsageError('check-config: expected exactly one FILE');
    let config: GatewayConfig;
    try {
      config = loadGatewayConfig({ file, env: process.env });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const problems: readonly ConfigProblem[] = err instanceof GatewayConfigError ? err.details : err.problems.map((message) => ({ path: '(root)', message }));
      if (values.json) {
        process.stdout.write(`${JSON.stringify({ file, valid: false, problems })}\n`);
      } else {
        process.stderr.write(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      }
      return 1;
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ file, valid: true, problems: [], ...(values.print ? { config: redactConfig(config) } : {}) })}\n`);
      return 0;
    }
    process.stdout.write(`${file}: OK\n`);
    if (values.print) process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\n`);
    return 0;
  });
}

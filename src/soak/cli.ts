/**
 * `npm run soak -- --minutes N [--devices D] [--interval-ms MS] [--keep]` (docs/testing.md §The soak). Prints progress,
 * then a summary of `name: value` lines (faults_injected, kills, messages, acknowledged, on_server, lost, …) and exits
 * 1 when any acknowledged state was lost, a change was applied twice, or gateway and server did not converge.
 */
import { parseArgs } from 'node:util';
import { runSoak } from './runner.js';

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`--${name}: expected a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

async function main(): Promise<number> {
  let minutes: number;
  let devices: number;
  let intervalMs: number;
  let keep: boolean;
  try {
    const { values } = parseArgs({
      options: { minutes: { type: 'string' }, devices: { type: 'string' }, 'interval-ms': { type: 'string' }, keep: { type: 'boolean' } },
      strict: true,
    });
    minutes = positive('minutes', values.minutes, 1);
    devices = Math.round(positive('devices', values.devices, 20));
    intervalMs = positive('interval-ms', values['interval-ms'], 20);
    keep = values.keep ?? false;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nusage: npm run soak -- --minutes N [--devices D] [--interval-ms MS] [--keep]\n`);
    return 2;
  }
  const summary = await runSoak({ minutes, devices, intervalMs, keep, log: (line) => process.stdout.write(`${line}\n`) });
  for (const [name, value] of Object.entries(summary)) process.stdout.write(`${name}: ${value}\n`);
  const failed = summary.lost !== 0 || Number(summary.max_applications) > 1 || summary.converged !== 'yes';
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

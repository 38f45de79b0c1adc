/**
 * `npm run bench:latency`: how live sync performs. Each section prints `name: value unit` lines with a baseline from
 * the same run; nothing fails on timing. Sections:
 *   - server capacity: 1,000 / 5,000 / 10,000 gateways each holding a live wait on one server process, memory per
 *     held wait, wake latency when an app changes one entity in every home at once (bench/latency-capacity.ts).
 * Further sections (the gateway's downlink and uplink latency with polling as the baseline, upstream bytes per day)
 * are functions of the same shape added to SECTIONS.
 * Flags: --quick (small sizes), --sizes 1000,5000 (capacity sizes).
 */
import { loadavg } from 'node:os';
import { runCapacityBench } from './latency-capacity.js';

interface Section {
  readonly title: string;
  readonly run: () => Promise<void>;
}

function sizesFromArgs(argv: readonly string[]): number[] {
  const i = argv.indexOf('--sizes');
  if (i >= 0) {
    const sizes = (argv[i + 1] ?? '').split(',').map(Number);
    if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--sizes: expected integers such as 1000,5000, got ${JSON.stringify(argv[i + 1] ?? null)}`);
    return sizes;
  }
  return argv.includes('--quick') ? [200, 1_000] : [1_000, 5_000, 10_000];
}

const SECTIONS: readonly Section[] = [
  {
    title: 'server capacity: live waits held by one server process, one change in every home at once',
    run: () => runCapacityBench({ sizes: sizesFromArgs(process.argv.slice(2)) }),
  },
];

async function main(): Promise<void> {
  process.stdout.write(`# load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  for (const section of SECTIONS) {
    process.stdout.write(`# ${section.title}\n`);
    await section.run();
  }
  process.stdout.write(`# load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

/**
 * `npm run bench:latency`: how live sync performs. Each section prints `name: value unit` lines with a baseline from
 * the same run; nothing fails on timing. Sections:
 *   - gateway: downlink (app change → device command) and uplink (device PUBLISH → the server, critical and
 *     ordinary) latency, idle and under the reference home load, and upstream bytes a day, live against polling as
 *     the baseline (bench/latency-gateway.ts);
 *   - server capacity: 1,000 / 5,000 / 10,000 gateways each holding a live wait on one server process, memory per
 *     held wait, wake latency when an app changes one entity in every home at once (bench/latency-capacity.ts).
 * Flags: --quick (small sizes, 20 samples), --sizes 1000,5000 (capacity sizes), --samples N (gateway, default 50),
 * --only gateway|capacity.
 */
import { loadavg } from 'node:os';
import { runCapacityBench } from './latency-capacity.js';
import { runGatewayLatencyBench } from './latency-gateway.js';

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

function samplesFromArgs(argv: readonly string[]): number {
  const i = argv.indexOf('--samples');
  if (i < 0) return argv.includes('--quick') ? 20 : 50;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--samples: expected an integer ≥ 1, got ${JSON.stringify(argv[i + 1] ?? null)}`);
  return n;
}

const ARGS = process.argv.slice(2);

const SECTIONS: ReadonlyArray<Section & { readonly key: string }> = [
  {
    key: 'gateway',
    title: 'gateway: live sync against polling (the baseline), idle and at the reference home load (100 devices, 10 msg/s)',
    run: () => runGatewayLatencyBench({ samples: samplesFromArgs(ARGS), bytesSeconds: ARGS.includes('--quick') ? 20 : 60 }),
  },
  {
    key: 'capacity',
    title: 'server capacity: live waits held by one server process, one change in every home at once',
    run: () => runCapacityBench({ sizes: sizesFromArgs(ARGS) }),
  },
];

async function main(): Promise<void> {
  process.stdout.write(`# load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  const only = ARGS.indexOf('--only') >= 0 ? ARGS[ARGS.indexOf('--only') + 1] : undefined;
  for (const section of SECTIONS) {
    if (only !== undefined && section.key !== only) continue;
    process.stdout.write(`# ${section.title}\n`);
    await section.run();
  }
  process.stdout.write(`# load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

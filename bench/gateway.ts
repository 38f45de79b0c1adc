/**
 * `npm run bench:gateway` (docs/testing.md §Benchmarks): every figure as `name: value unit`, each with a baseline
 * measured in the same run. Figures, not pass/fail: nothing here fails on timing.
 */
import { runBytesBench, runServerDigestCost } from './gateway-bytes.js';
import { runBacklogBench, runSyncBench } from './gateway-sync.js';
import { runMemoryBench } from './gateway-memory.js';
import { runModuleCosts } from './gateway-modules.js';
import { runIngestBench } from './ingest.js';

const quick = process.argv.includes('--quick');
/** `--only bytes`: only the bytes-on-the-wire and digest-cost part (the others take minutes). */
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;

async function main(): Promise<void> {
  if (only === 'bytes') {
    await runBytesBench(quick ? 30 : 100);
    runServerDigestCost(quick ? 5 : 20);
    return;
  }
  if (only !== undefined) throw new Error(`--only: expected "bytes", got ${JSON.stringify(only)}`);
  process.stdout.write('# ingest (durable QoS 1/QoS 0 into SQLite vs bare aedes)\n');
  await runIngestBench(quick ? { perClient: 5_000, runs: 1 } : {});
  process.stdout.write('# sync\n');
  await runSyncBench(quick ? 50 : 200);
  await runBacklogBench(10_000);
  process.stdout.write('# bytes on the wire: the seed alone (baseline) against the extensions, same home, same changes\n');
  await runBytesBench(quick ? 30 : 100);
  runServerDigestCost(quick ? 5 : 20);
  process.stdout.write('# memory and disk (the daemon as shipped, as a child process)\n');
  await runMemoryBench(quick ? { seconds: 10, rounds: 1 } : {});
  runModuleCosts();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});

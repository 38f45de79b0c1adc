/**
 * `npm run bench:gateway` (issue 3 item 11): every figure as `name: value unit`, each with a baseline measured in
 * the same run. Figures, not pass/fail: nothing here fails on timing.
 */
import { runBacklogBench, runSyncBench } from './gateway-sync.js';
import { runMemoryBench } from './gateway-memory.js';
import { runModuleCosts } from './gateway-modules.js';
import { runIngestBench } from './ingest.js';

const quick = process.argv.includes('--quick');

async function main(): Promise<void> {
  process.stdout.write('# ingest (durable QoS 1/QoS 0 into SQLite vs bare aedes)\n');
  await runIngestBench(quick ? { perClient: 5_000, runs: 1 } : {});
  process.stdout.write('# sync\n');
  await runSyncBench(quick ? 50 : 200);
  await runBacklogBench(10_000);
  process.stdout.write('# memory and disk (the daemon as shipped, as a child process)\n');
  await runMemoryBench(quick ? { seconds: 10, rounds: 1 } : {});
  runModuleCosts();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});

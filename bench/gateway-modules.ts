/**
 * What each part of the daemon costs in memory: a fresh `node` with the unit's V8 flags imports the daemon's modules
 * in the order the daemon loads them, and after each step (and a full GC) reports the growth of RSS, private memory
 * (Private_Dirty + Private_Clean), the V8 heap in use (loaded code and its data) and file-backed RSS (pages of the
 * node binary, ICU data and native addons the step touched). The last steps run what a running daemon adds: the
 * store's writer thread and a started daemon at rest. Figures, not a pass/fail: `npm run bench:gateway` prints them.
 *
 * Run: tsc -p tsconfig.bench.json && node .bench-build/bench/gateway-modules.js
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { figure } from './lib.js';
import { unitNodeFlags } from './gateway-memory.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Runs in the child: one step per line of argv, each an import list; prints one JSON line per step. */
const CHILD = `
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const kb = (text, key) => Number(new RegExp('^' + key + ':\\\\s+(\\\\d+)', 'm').exec(text)?.[1] ?? 0) / 1024;
const sample = () => {
  const r = readFileSync('/proc/self/smaps_rollup', 'utf8');
  const s = readFileSync('/proc/self/status', 'utf8');
  return { rss: kb(s, 'VmRSS'), file: kb(s, 'RssFile'), priv: kb(r, 'Private_Dirty') + kb(r, 'Private_Clean'), heap: process.memoryUsage().heapUsed / 1048576 };
};
const settle = async () => { for (let i = 0; i < 3; i += 1) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); } };
const root = process.env.IB_ROOT;
const steps = JSON.parse(process.env.IB_STEPS);
await settle();
let prev = sample();
console.log(JSON.stringify({ step: 'bare node', ...prev }));
for (const step of steps) {
  if (step.kind === 'import') for (const m of step.modules) await import(m.startsWith('.') ? join(root, m) : m);
  if (step.kind === 'writer') {
    const { openStore } = await import(join(root, 'dist/store/index.js'));
    const { APPLY_MESSAGES } = await import(join(root, 'dist/ingest/local-writes.js'));
    const { silentLogger } = await import(join(root, 'dist/log.js'));
    const store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'ib-mod-')), 'g.db'), logger: silentLogger(), writer: step.writer });
    for (let i = 0; i < 200; i += 1) await store.durable(APPLY_MESSAGES, { messages: [[{ kind: 'state', deviceId: 'd' + (i % 100), attributes: { t: i } }]], nowMicros: Date.now() * 1000, nowMs: Date.now() });
    globalThis.keep = store;
  }
  await settle();
  const now = sample();
  console.log(JSON.stringify({ step: step.name, rss: now.rss - prev.rss, file: now.file - prev.file, priv: now.priv - prev.priv, heap: now.heap - prev.heap }));
  prev = now;
}
console.log(JSON.stringify({ step: 'total', ...prev }));
process.exit(0);
`;

const STEPS = [
  { name: 'zod', kind: 'import', modules: ['zod'] },
  { name: 'pino (logger)', kind: 'import', modules: ['pino', './dist/log.js'] },
  { name: 'yaml + config schema', kind: 'import', modules: ['yaml', './dist/config/gateway-config.js'] },
  { name: 'protocol (schemas, HMAC, gzip)', kind: 'import', modules: ['./dist/protocol/index.js'] },
  { name: 'better-sqlite3 + store', kind: 'import', modules: ['better-sqlite3', './dist/store/index.js'] },
  { name: 'aedes + broker', kind: 'import', modules: ['aedes', './dist/broker/index.js', './dist/broker/bus.js'] },
  { name: 'ingest + adapters', kind: 'import', modules: ['./dist/ingest/index.js', './dist/ingest/adapters/index.js'] },
  { name: 'sync client', kind: 'import', modules: ['./dist/sync/index.js', 'node:http'] },
  { name: 'daemon', kind: 'import', modules: ['./dist/daemon/gateway-daemon.js'] },
  { name: 'store writer: inline, 200 writes', kind: 'writer', writer: 'inline' },
  { name: 'store writer: worker thread, 200 writes', kind: 'writer', writer: 'worker' },
];

export function runModuleCosts(): void {
  const r = spawnSync(process.execPath, [...unitNodeFlags(), '--expose-gc', '--input-type=module', '-e', CHILD], {
    cwd: ROOT,
    env: { ...process.env, IB_ROOT: ROOT, IB_STEPS: JSON.stringify(STEPS) },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`module cost child failed: ${r.stderr}`);
  process.stdout.write('# memory by part: growth after each step (the first and last lines are totals), MB: rss, private, V8 heap in use, file-backed rss\n');
  for (const line of r.stdout.trim().split('\n')) {
    const s = JSON.parse(line) as { step: string; rss: number; priv: number; heap: number; file: number };
    const name = s.step.replace(/[^a-z0-9]+/gi, '_').replace(/^_|_$/g, '').toLowerCase();
    figure(`module_${name}_rss`, s.rss, 'MB', 1);
    figure(`module_${name}_private`, s.priv, 'MB', 1);
    figure(`module_${name}_heap`, s.heap, 'MB', 1);
    figure(`module_${name}_filebacked`, s.file, 'MB', 1);
  }
}

if (process.argv[1] !== undefined && join(process.argv[1]) === join(ROOT, '.bench-build/bench/gateway-modules.js')) runModuleCosts();

/** Small helpers shared by the benchmarks: figures as `name: value unit` lines, medians, temp dirs. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function figure(name: string, value: number, unit: string, digits = 2): void {
  const shown = Number.isInteger(value) ? String(value) : value.toFixed(digits);
  process.stdout.write(`${name}: ${shown} ${unit}\n`);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The p-th percentile (0–100) by nearest rank; 0 for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? 0;
}

/** The node flags a systemd unit runs its process with (ExecStart=… node <flags> …/cli.js …). */
export function unitNodeFlags(unitFile: string): string[] {
  const exec = readFileSync(unitFile, 'utf8').split('\n').find((l) => l.startsWith('ExecStart='));
  if (!exec) throw new Error(`${unitFile}: no ExecStart line`);
  return exec.split(/\s+/).filter((w) => w.startsWith('--max') || w.startsWith('--v8') || w.startsWith('--optimize') || w.startsWith('--lite') || w.startsWith('--single'));
}

/** Small helpers shared by the benchmarks: figures as `name: value unit` lines, medians, temp dirs. */
import { mkdtempSync } from 'node:fs';
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

/**
 * The soak, CI variant: `node dist/soak/cli.js --minutes 0.4` (what `npm run soak` runs after building) — real
 * server, the gateway as a child process, real devices, random faults — ends with `name: value` lines and lost: 0.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const SOAK = resolve(import.meta.dirname, '../../dist/soak/cli.js');

describe('soak (short)', () => {
  it('runs random faults for 24 s and loses nothing', async () => {
    expect(existsSync(SOAK), 'run `npm run build` first (npm test does)').toBe(true);
    const proc = spawn(process.execPath, [SOAK, '--minutes', '0.4', '--devices', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    const summary = new Map([...out.matchAll(/^(\w+): (.*)$/gm)].map((m) => [m[1], m[2]]));
    expect(code, out).toBe(0);
    expect(summary.get('lost')).toBe('0');
    expect(summary.get('converged')).toBe('yes');
    expect(summary.get('max_applications')).toBe('1');
    expect(Number(summary.get('faults_injected'))).toBeGreaterThan(0); // one fault can take ~15 s (fault-point kill + restarts)
    expect(Number(summary.get('acknowledged'))).toBeGreaterThan(100);
    expect(summary.get('on_server')).toBe(summary.get('acknowledged'));
    for (const name of ['kills', 'messages']) expect(summary.has(name)).toBe(true);
  }, 180_000);

  it('refuses a bad --minutes with exit 2', async () => {
    const proc = spawn(process.execPath, [SOAK, '--minutes', 'soon'], { stdio: 'ignore' });
    expect(await new Promise((r) => proc.once('exit', (c) => r(c)))).toBe(2);
  });
});

/**
 * `demo`, the built CLI as a user runs it: it says how long it runs, shows progress on one line every few seconds,
 * says which light the phone app turned off, with what state and how long the command took to reach it, logs the
 * command the gateway sent, ends with both
 * sides agreeing, and removes its temporary directory (a --data-dir given by the user is kept); Ctrl-C ends it early
 * and cleans up too.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onLines } from '../../src/util/lines.js';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';

const kept = mkdtempSync(join(tmpdir(), 'ib-demo-kept-'));
afterAll(() => rmSync(kept, { recursive: true, force: true }));

interface Run {
  readonly code: number | null;
  /** The `msg` of every JSON log line, in order. */
  readonly msgs: string[];
}

function demo(args: string[], onMsg?: (msg: string, kill: (s: NodeJS.Signals) => void) => void): Promise<Run> {
  assertBuilt();
  const proc = spawn(process.execPath, [CLI, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const msgs: string[] = [];
  onLines(proc.stdout, (line) => {
    const msg = (JSON.parse(line) as { msg: string }).msg;
    msgs.push(msg);
    onMsg?.(msg, (s) => proc.kill(s));
  });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, msgs: stderr ? [...msgs, `stderr: ${stderr}`] : msgs })));
}

const dataDirOf = (msgs: readonly string[]): string => /; data in (\S+)$/.exec(msgs.find((m) => m.includes('; data in ')) ?? '')?.[1] ?? '';

describe('demo', () => {
  it('narrates a short run end to end and removes its temporary directory; --data-dir is kept', async () => {
    const [temp, given] = await Promise.all([demo(['--seconds', '10', '--offline-seconds', '3']), demo(['--seconds', '10', '--offline-seconds', '0', '--data-dir', kept])]);
    expect(temp.code, temp.msgs.join('\n')).toBe(0);
    const said = temp.msgs.filter((m) => m.startsWith('DEMO '));
    expect(said[0]).toBe('DEMO runs 10 s: 5 s online, 3 s with the server stopped, 2 s online again, then a check that both sides agree (Ctrl-C ends it early)');
    expect(said.some((m) => /^DEMO \d+\/10 s: sync (online|backoff|offline), \d+ pending, last cycle pushed \d+, \d+ device messages$/.test(m))).toBe(true);
    // The app's command reaches the simulated light over the gateway's held live wait, and the delay is printed.
    const obeyed = /^DEMO app set (light-\d+) \{"state":"OFF"\} → devices\/(light-\d+)\/set after (\d+) ms/.exec(said.find((m) => m.includes('app set')) ?? '');
    const light = obeyed?.[1];
    expect(light, said.join('\n')).toBeDefined();
    expect(obeyed?.[2]).toBe(light);
    expect(Number(obeyed?.[3])).toBeLessThan(10_000);
    expect(temp.msgs).toContain(`command sent on devices/${light ?? '?'}/set`);
    expect(said[said.length - 1]).toMatch(/^DEMO server and gateway hold the same state: \d+ entities on the gateway, \d+ on the server/);
    const dir = dataDirOf(temp.msgs);
    expect(dir).toMatch(/ib-demo-/);
    expect(existsSync(dir)).toBe(false);

    expect(given.code, given.msgs.join('\n')).toBe(0);
    expect(dataDirOf(given.msgs)).toBe(kept);
    expect(existsSync(join(kept, 'gateway/gateway.db'))).toBe(true);
  }, 90_000);

  it('Ctrl-C ends it early, cleanly, and removes the temporary directory', async () => {
    let signalled = false;
    const r = await demo(['--seconds', '60'], (msg, kill) => {
      if (!signalled && msg.includes('; data in ')) {
        signalled = true;
        kill('SIGINT');
      }
    });
    expect(r.code, r.msgs.join('\n')).toBe(130);
    expect(r.msgs[r.msgs.length - 1]).toBe('DEMO ended early (Ctrl-C)');
    expect(r.msgs).toContain('gateway stopped');
    expect(existsSync(dataDirOf(r.msgs))).toBe(false);
  }, 60_000);
});

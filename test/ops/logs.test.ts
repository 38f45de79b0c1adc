/**
 * Logs a person can read, from the built daemon as a child process: pretty output is one line per event (no
 * field-per-line blocks, no pid or hostname); SIGUSR2 steps the level info → debug → trace → info, said at warn, and
 * the components' child loggers follow it; a sync that fails when asked over the control listener is logged without
 * a stack (its cause chain printed the same message three times).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { levelCycle } from '../../src/log.js';
import { onLines } from '../../src/util/lines.js';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';
import { waitForItem } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

interface Child {
  readonly proc: ChildProcess;
  readonly lines: string[];
  waitFor(pred: (line: string) => boolean, ms: number, what: string): Promise<string>;
  stop(): Promise<number | null>;
}

/** `run` with a config file (and flags), output collected line by line. */
function daemon(configYaml: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'ib-logs-'));
  writeFileSync(join(dir, 'gateway.yaml'), configYaml);
  const proc = spawn(process.execPath, [CLI, 'run', '--config', join(dir, 'gateway.yaml'), '--data-dir', dir, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', ...args], {
    env: { ...process.env, INBETWEENIES_LOG_LEVEL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  onLines(proc.stdout, (l) => lines.push(l));
  proc.stderr?.on('data', (c: Buffer) => lines.push(`stderr: ${c.toString()}`));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  cleanups.push(() => {
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    proc,
    lines,
    waitFor: (pred, ms, what) => waitForItem(lines, pred, ms, what),
    stop: async () => {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

// eslint-disable-next-line no-control-regex
const plain = (s: string): string => s.replace(/\u001b\[[0-9;]*m/g, '');

describe('readable logs', () => {
  it('pretty output is one line per event, without pid and hostname', async () => {
    const d = daemon('log:\n  pretty: true\n', ['--http-port', '0']);
    await d.waitFor((l) => l.includes('operations started'), 20_000, 'operations started');
    expect(await d.stop()).toBe(0);
    const lines = d.lines.map(plain).filter((l) => l.trim() !== '');
    // Every line starts with the time: no field continues on a line of its own.
    for (const line of lines) expect(line, lines.join('\n')).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR|DEBUG|TRACE|FATAL) \(inbetweenies-gateway\): /);
    const started = lines.find((l) => l.includes('gateway started'));
    expect(started).toMatch(/gateway started \{"module":"daemon","mqtt":"127\.0\.0\.1:\d+",/);
    expect(lines.join('\n')).not.toMatch(/"pid"|"hostname"|\/\d+\):/);
    // Start-up to "operations started" plus the stop: one line each (was one line per field, 45 at start-up).
    expect(lines.length).toBeLessThanOrEqual(16);
  }, 40_000);

  it('the level cycle: info → debug → trace → info; from a quieter level back to it', () => {
    expect(levelCycle('info')).toEqual(['info', 'debug', 'trace']);
    expect(levelCycle('warn')).toEqual(['warn', 'info', 'debug', 'trace']);
    expect(levelCycle('trace')).toEqual(['trace', 'info']);
  });

  it('SIGUSR2 steps the level at run time, said at warn, and the components follow it', async () => {
    // An unreachable server: the scheduler's child logger says "offline probe failed" at debug every 200 ms.
    const d = daemon('sync:\n  maxRetries: 0\n  offlineProbeSeconds: 0.2\n', ['--server-url', 'http://127.0.0.1:1', '--client-id', 'gw'], { INBETWEENIES_CLIENT_SECRET: 'not-used' });
    await d.waitFor((l) => l.includes('offline, buffering and probing'), 20_000, 'offline mode');
    await new Promise((r) => setTimeout(r, 600));
    const probe = (l: string) => l.includes('"msg":"offline probe failed"');
    expect(d.lines.filter(probe)).toEqual([]);
    const steps: string[] = [];
    for (const to of ['debug', 'trace', 'info']) {
      d.proc.kill('SIGUSR2');
      const line = await d.waitFor((l) => l.includes(`"msg":"log level changed to ${to}"`) && !steps.includes(l), 10_000, `level ${to}`);
      steps.push(line);
      expect(JSON.parse(line)).toMatchObject({ level: 40, to, reason: 'SIGUSR2' });
      if (to === 'debug') await d.waitFor(probe, 10_000, 'a debug line from the scheduler');
    }
    // Back at info: the debug lines stop.
    await new Promise((r) => setTimeout(r, 300));
    const count = d.lines.filter(probe).length;
    await new Promise((r) => setTimeout(r, 1000));
    expect(d.lines.filter(probe).length).toBe(count);
    expect(await d.stop()).toBe(0);
  }, 60_000);

  it('a sync asked for over the control listener that fails is logged once, without a stack', async () => {
    const d = daemon('sync:\n  maxRetries: 0\n', ['--http-port', '0', '--server-url', 'http://127.0.0.1:1', '--client-id', 'gw'], { INBETWEENIES_CLIENT_SECRET: 'not-used' });
    const listening = await d.waitFor((l) => l.includes('health, metrics and control listening'), 20_000, 'the control listener');
    const url = (JSON.parse(listening) as { url: string }).url;
    const res = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(502);
    const failed = await d.waitFor((l) => l.includes('"msg":"control request failed"'), 10_000, 'the control failure line');
    expect(JSON.parse(failed)).toMatchObject({ level: 40, code: 'TRANSPORT', status: 502 });
    expect(d.lines.filter((l) => l.includes('"stack"'))).toEqual([]);
    expect(await d.stop()).toBe(0);
  }, 40_000);
});

/**
 * Fail fast, pointing the right way: a port the daemon needs is taken (Mosquitto on 1883 beside zigbee2mqtt is the
 * common case). The built CLI exits 1 at once with a message naming the port and the way out, instead of running on
 * with no broker and no HTTP listener. Ports are held by a plain TCP server on an ephemeral port.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'ib-busy-'));
let holder: Server;
let busy: number;

beforeAll(async () => {
  assertBuilt();
  holder = createServer();
  busy = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as { port: number }).port)));
});
afterAll(async () => {
  await new Promise((r) => holder.close(r));
  rmSync(dataDir, { recursive: true, force: true });
});

/** Runs the daemon; resolves with its exit code, stderr, and how long it ran (killed after `limitMs`). */
function runDaemon(args: string[], limitMs: number): Promise<{ code: number | null; stderr: string; stdout: string; ms: number }> {
  const started = Date.now();
  const proc = spawn(process.execPath, [CLI, 'run', '--data-dir', dataDir, '--mqtt-host', '127.0.0.1', '--http-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const killer = setTimeout(() => proc.kill('SIGKILL'), limitMs);
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, stdout, ms: Date.now() - started });
    }),
  );
}

describe('a port in use at start', () => {
  it('MQTT port taken: exit 1 at once, naming the port, external-broker mode and another port', async () => {
    const r = await runDaemon(['--mqtt-port', String(busy)], 20_000);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toContain(`MQTT port ${busy} on 127.0.0.1 (mqtt.port) is already in use`);
    expect(r.stderr).toContain('mqtt.mode: external');
    expect(r.stderr).toContain(`mqtt.external.url: mqtt://127.0.0.1:${busy}`);
    expect(r.stderr).toContain('--mqtt-port N');
    // Process start-up on a loaded 2-core machine takes seconds; the daemon itself adds at most the 0.5 s wind-down.
    expect(r.ms).toBeLessThan(20_000);
  }, 30_000);

  it('HTTP port taken: exit 1, naming http.port and --http-port', async () => {
    const r = await runDaemon(['--mqtt-port', '0', '--http-port', String(busy)], 20_000);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toContain(`port ${busy} on 127.0.0.1 (http.port, the health and control listener) is already in use`);
    expect(r.stderr).toContain('--http-port N');
  }, 30_000);

  it('a data directory that cannot be created: exit 1 naming dataDir', async () => {
    const r = await runDaemon(['--mqtt-port', '0', '--data-dir', '/dev/null/store'], 20_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot start: the store in /dev/null/store (dataDir, --data-dir) cannot be opened: ENOTDIR');
  }, 30_000);
});

/**
 * Runs the built gateway (`node dist/cli.js run`) as a child process, the way systemd does, so tests can kill -9 it.
 * The MQTT port is read from the daemon's own JSON log line ("gateway started", field mqtt).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { onLines } from '../../src/util/lines.js';

export const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

export interface DaemonProcess {
  readonly proc: ChildProcess;
  readonly mqttPort: number;
  readonly lines: string[];
  kill9(): Promise<void>;
  stop(): Promise<number | null>;
}

export interface SpawnDaemonOptions {
  readonly dataDir: string;
  readonly serverUrl?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly config?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly startTimeoutMs?: number;
}

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does it)`);
}

export async function spawnDaemon(options: SpawnDaemonOptions): Promise<DaemonProcess> {
  assertBuilt();
  const args = [CLI, 'run', '--data-dir', options.dataDir, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0'];
  if (options.config) args.push('--config', options.config);
  if (options.serverUrl) args.push('--server-url', options.serverUrl);
  if (options.clientId) args.push('--client-id', options.clientId);
  // The HTTP listener is on by default (9180): tests take a free port unless they name one.
  if (!(options.extraArgs ?? []).includes('--http-port')) args.push('--http-port', '0');
  args.push(...(options.extraArgs ?? []));
  const env: NodeJS.ProcessEnv = { ...process.env, INBETWEENIES_LOG_LEVEL: 'info', ...options.env };
  if (options.clientSecret) env.INBETWEENIES_CLIENT_SECRET = options.clientSecret;
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const exited = new Promise<number | null>((done) => proc.once('exit', (code) => done(code)));
  const mqttPort = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start in time:\n${lines.join('\n')}`)), options.startTimeoutMs ?? 15_000);
    proc.stderr?.on('data', (chunk: Buffer) => lines.push(`stderr: ${chunk.toString()}`));
    onLines(proc.stdout, (line) => {
      lines.push(line);
      // The daemon's own "gateway started" line (mqtt: "host:port") is stable whatever the broker logs.
      const started = /"mqtt":"[^"]*:(\d+)".*"msg":"gateway started"/.exec(line);
      if (started) {
        clearTimeout(timer);
        resolvePort(Number(started[1]));
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before listening:\n${lines.join('\n')}`));
    });
  });
  return {
    proc,
    mqttPort,
    lines,
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

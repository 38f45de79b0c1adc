/**
 * Runs the built sync server (`node dist/cli.js server`) as a child process, the way an operator does, so tests and
 * benchmarks can read its memory from /proc, kill it, or restart it on the same data dir. The URL is read from the
 * server's own JSON log line ("listening on …", field url). Clients are added with the real `server add-client`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { onLines } from '../../src/util/lines.js';

/** The package root: the nearest directory up with a package.json (this file also runs compiled, from .bench-build/). */
function packageRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const SERVER_CLI = join(packageRoot(import.meta.dirname), 'dist/cli.js');

export interface ServerProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly lines: string[];
  /** Peak and current resident set size of the child, in MiB (/proc/<pid>/status VmHWM, VmRSS). */
  memory(): { rssMb: number; hwmMb: number };
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export interface SpawnServerOptions {
  /** The SQLite store's directory (and where the config file is written). */
  readonly dataDir: string;
  /** Serve from this PostgreSQL database (`--database-url`) instead of the data dir. */
  readonly databaseUrl?: string;
  /** YAML text of the config file (written next to the data dir); host/port/dataDir are set by flags. */
  readonly configYaml?: string;
  readonly nodeFlags?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly startTimeoutMs?: number;
}

function kb(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}

export function procMemory(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssMb: kb(status, 'VmRSS') / 1024, hwmMb: kb(status, 'VmHWM') / 1024 };
}

export async function spawnServer(options: SpawnServerOptions): Promise<ServerProcess> {
  if (!existsSync(SERVER_CLI)) throw new Error(`${SERVER_CLI} is missing: run \`npm run build\` first`);
  const store = options.databaseUrl === undefined ? ['--data-dir', options.dataDir] : ['--database-url', options.databaseUrl];
  const args = [...(options.nodeFlags ?? []), SERVER_CLI, 'server', '--host', '127.0.0.1', '--port', '0', ...store];
  if (options.configYaml !== undefined) {
    const file = `${options.dataDir.replace(/\/+$/, '')}.yaml`;
    writeFileSync(file, options.configYaml);
    args.push('--config', file);
  }
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const lines: string[] = [];
  const exited = new Promise<number | null>((done) => proc.once('exit', (code) => done(code)));
  proc.stderr?.on('data', (chunk: Buffer) => lines.push(`stderr: ${chunk.toString()}`));
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start in time:\n${lines.join('\n')}`)), options.startTimeoutMs ?? 15_000);
    onLines(proc.stdout, (line) => {
      lines.push(line);
      const m = /"url":"(https?:\/\/[^"]+)".*listening on/.exec(line);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        done(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`server exited with ${code} before listening:\n${lines.join('\n')}`));
    });
  });
  const pid = proc.pid ?? 0;
  return {
    proc,
    pid,
    url,
    lines,
    memory: () => procMemory(pid),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    kill9: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** `server add-client` through the real CLI; returns the printed credential. */
export function addClientCli(dataDir: string, home: string): { client_id: string; client_secret: string; home_id: string } {
  const out = execFileSync(process.execPath, [SERVER_CLI, 'server', 'add-client', '--data-dir', dataDir, '--home', home], { encoding: 'utf8' });
  return JSON.parse(out) as { client_id: string; client_secret: string; home_id: string };
}

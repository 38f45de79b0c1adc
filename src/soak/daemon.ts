/**
 * The gateway as the soak runs it: `node dist/cli.js run` as a child process on a fixed MQTT port (devices
 * reconnect to the same address after every kill), killable with SIGKILL, optionally armed with a fault point
 * (INBETWEENIES_FAULT, src/sync/fault-points.ts). Ready once its JSON log says "mqtt broker listening".
 */
import { onLines } from '../util/lines.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface GatewayProcessOptions {
  readonly dataDir: string;
  readonly mqttPort: number;
  readonly serverUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Phase to SIGKILL itself at (fault-points.ts), e.g. "before_ack" or "after_request:2". */
  readonly fault?: string;
  /** Receives every stdout/stderr line. */
  readonly onLine?: (line: string) => void;
}

export interface GatewayProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
  /** Resident memory in MB from /proc (Linux), or undefined. */
  rssMb(): number | undefined;
}

/** dist/cli.js, whether this module runs from dist/soak/ or from src/soak/ (vitest). */
export function gatewayCli(): string {
  const sibling = resolve(import.meta.dirname, '../cli.js');
  if (existsSync(sibling)) return sibling;
  const built = resolve(import.meta.dirname, '../../dist/cli.js');
  if (existsSync(built)) return built;
  throw new Error(`${built} is missing: run \`npm run build\` first`);
}

/**
 * Fast polling so a short soak exercises many cycles; one retry, then offline probing every 0.5 s. The fleets bring
 * up to hundreds of devices from one host within seconds: device limits above the default 100 new a minute.
 */
function writeConfig(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, 'soak-gateway.yaml');
  writeFileSync(
    path,
    'sync:\n  minIntervalSeconds: 0.2\n  maxIntervalSeconds: 1\n  maxRetries: 1\n  offlineProbeSeconds: 0.5\n  criticalDebounceMs: 20\n' +
      'ingest:\n  deviceLimits:\n    newPerMinute: 100000\n    total: 100000\n',
  );
  return path;
}

export async function startGatewayProcess(options: GatewayProcessOptions, startTimeoutMs = 45_000): Promise<GatewayProcess> {
  const args = [
    gatewayCli(), 'run', '--config', writeConfig(options.dataDir), '--data-dir', options.dataDir,
    '--mqtt-host', '127.0.0.1', '--mqtt-port', String(options.mqttPort), '--http-port', '0', '--server-url', options.serverUrl, '--client-id', options.clientId,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, INBETWEENIES_LOG_LEVEL: 'info', INBETWEENIES_CLIENT_SECRET: options.clientSecret };
  delete env.INBETWEENIES_FAULT;
  if (options.fault !== undefined) env.INBETWEENIES_FAULT = options.fault;
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => proc.once('exit', (code, signal) => done({ code, signal })));
  let ready: () => void = () => undefined;
  const listening = new Promise<void>((r) => {
    ready = r;
  });
  const onLine = (prefix: string) => (line: string): void => {
    options.onLine?.(prefix + line);
    if (line.includes('mqtt broker listening')) ready();
  };
  onLines(proc.stdout, onLine(''));
  onLines(proc.stderr, onLine('stderr: '));
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    listening.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), startTimeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome === 'timeout') proc.kill('SIGKILL');
  if (outcome !== 'ready' && options.fault === undefined) throw new Error(`gateway did not start (${outcome})`);
  return {
    proc,
    exited,
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
    rssMb: () => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
        return m ? Math.round(Number(m[1]) / 102.4) / 10 : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

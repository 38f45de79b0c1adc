/** Helpers for the ops tests: a real unix datagram socket for NOTIFY_SOCKET, an in-process daemon with ops tuned. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig, type GatewayConfig } from '../../src/config/gateway-config.js';
import { GatewayDaemon } from '../../src/daemon/gateway-daemon.js';
import { silentLogger } from '../../src/log.js';
import { fastSync } from '../helpers/gateway.js';
import { onLines } from '../../src/util/lines.js';

/**
 * Node has no unix datagram sockets, so python3 (Debian's python3-minimal, on every Raspberry Pi OS / Debian image
 * and in CI) binds one and prints each datagram as a JSON string on a line. A missing python3 fails the test.
 */
const RECEIVER = `
import socket, sys, json, os
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
print(json.dumps("LISTENING"), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;

export interface NotifySocket {
  readonly path: string;
  /** Every datagram received so far, in order. */
  readonly messages: string[];
  waitFor(predicate: (m: string) => boolean, timeoutMs: number, what: string): Promise<string>;
  close(): void;
}

export async function openNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'ib-notify-'));
  const path = join(dir, 'notify.sock');
  const proc: ChildProcess = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: string[] = [];
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const listening = new Promise<void>((resolve, reject) => {
    proc.once('error', (err) => reject(new Error(`python3 is needed for the NOTIFY_SOCKET tests: ${err.message}`)));
    proc.once('exit', (code) => reject(new Error(`notify receiver exited ${code}: ${stderr}`)));
    onLines(proc.stdout, (line) => {
      const msg = JSON.parse(line) as string;
      if (msg === 'LISTENING') resolve();
      else messages.push(msg);
    });
  });
  await listening;
  return {
    path,
    messages,
    waitFor: (predicate, timeoutMs, what) => waitForItem(messages, predicate, timeoutMs, what),
    close() {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls a growing list (log lines, datagrams) until an item matches; the error shows what did arrive. */
export async function waitForItem<T>(items: readonly T[], predicate: (item: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = items.find(predicate);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(items)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface OpsGateway {
  readonly daemon: GatewayDaemon;
  readonly dataDir: string;
  readonly url: string;
  readonly mqttUrl: string;
  close(): Promise<void>;
}

/** The real daemon in-process with its HTTP listener on 127.0.0.1:0. */
export async function startOpsGateway(options: {
  serverUrl?: string;
  clientId?: string;
  clientSecret?: string;
  env?: NodeJS.ProcessEnv;
  tune?: (c: GatewayConfig) => GatewayConfig;
} = {}): Promise<OpsGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ib-ops-'));
  const base = loadGatewayConfig({
    flags: { dataDir, mqttHost: '127.0.0.1', mqttPort: 0, httpPort: 0, serverUrl: options.serverUrl, clientId: options.clientId, clientSecret: options.clientSecret },
  });
  const config = (options.tune ?? ((c) => c))(fastSync(base));
  const daemon = new GatewayDaemon({ config, logger: silentLogger(), env: options.env ?? {} });
  const mqtt = await daemon.start();
  const url = daemon.httpUrl;
  if (!url) throw new Error('http listener did not start');
  return {
    daemon,
    dataDir,
    url,
    mqttUrl: `mqtt://127.0.0.1:${mqtt.port}`,
    close: async () => {
      await daemon.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // text
  }
  return { status: res.status, body, headers: res.headers };
}

/** Value of one sample line in a Prometheus exposition text, `name` with its labels if any (undefined when absent). */
export function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

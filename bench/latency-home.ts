/**
 * The parts of the gateway latency bench (bench/latency-gateway.ts): the built gateway as a child process (as systemd
 * runs it), an app that watches the home over live waits and notes when each change reaches the server, and the
 * reference home load (100 devices, 10 messages a second in all, every other one a repeat of the device's last state).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { MqttClient } from 'mqtt';
import { AppSession } from '../src/app/session.js';
import { silentLogger } from '../src/log.js';
import type { WireChange } from '../src/protocol/index.js';
import { onLines } from '../src/util/lines.js';
import { sleep } from './lib.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

export interface GatewayChild {
  readonly mqttPort: number;
  readonly httpUrl: string;
  /** A counter of /metrics (0 when absent). */
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

/** The sync settings a run uses (the gateway's `sync` section). */
export type SyncSettings = Record<string, number | boolean>;

/** Starts `dist/cli.js run` on a config of its own (the secret in the environment, as systemd passes it). */
export async function startGatewayChild(dir: string, server: { url: string; clientId: string; secret: string }, sync: SyncSettings): Promise<GatewayChild> {
  const file = join(dir, 'gateway.yaml');
  const syncYaml = Object.entries(sync).map(([k, v]) => `  ${k}: ${String(v)}`).join('\n');
  writeFileSync(
    file,
    [
      `dataDir: ${join(dir, 'data')}`,
      'log:\n  level: info',
      'mqtt:\n  host: 127.0.0.1\n  port: 0\n  allowAnonymous: loopback',
      'http:\n  port: 0',
      // The bench's 100 load devices and its probes appear at once from one identity: above the default 100 a minute.
      'ingest:\n  deviceLimits:\n    newPerMinute: 1000',
      `server:\n  url: ${server.url}\n  clientId: ${server.clientId}`,
      syncYaml === '' ? 'sync: {}' : `sync:\n${syncYaml}`,
      'jobs:\n  reconcile:\n    enabled: false\n  maintenance:\n    enabled: false\n  pruneConflicts:\n    enabled: false',
      '',
    ].join('\n'),
  );
  const proc = spawn(process.execPath, [CLI, 'run', '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, INBETWEENIES_CLIENT_SECRET: server.secret, INBETWEENIES_LOG_LEVEL: 'info' },
  });
  const { mqttPort, httpUrl } = await started(proc);
  proc.stdout?.resume();
  return {
    mqttPort,
    httpUrl,
    metric: async (name) => {
      const text = await (await fetch(`${httpUrl}/metrics`)).text();
      const m = new RegExp(`^inbetweenies_gateway_${name} ([0-9.e+]+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    },
    stop: async () => {
      const exited = new Promise((done) => proc.once('exit', done));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

function started(proc: ChildProcess): Promise<{ mqttPort: number; httpUrl: string }> {
  return new Promise((done, fail) => {
    let mqttPort: number | undefined;
    let httpUrl: string | undefined;
    onLines(proc.stdout, (line) => {
      let entry: { msg?: unknown; mqtt?: unknown; url?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === 'gateway started' && typeof entry.mqtt === 'string') mqttPort = Number(entry.mqtt.slice(entry.mqtt.lastIndexOf(':') + 1));
      if (typeof entry.msg === 'string' && entry.msg.startsWith('health, metrics and control listening') && typeof entry.url === 'string') httpUrl = entry.url;
      if (mqttPort !== undefined && httpUrl !== undefined) done({ mqttPort, httpUrl });
    });
    proc.once('exit', (code) => fail(new Error(`gateway exited early (${String(code)})`)));
  });
}

/**
 * An app of the home that holds live waits and notes when each change arrives: `until(id, test)` resolves with the
 * arrival time (performance.now()) of the first change of `id` whose state passes `test`, seen from now on.
 */
export class ServerWatch {
  readonly #session: AppSession;
  readonly #stop = new AbortController();
  readonly #waiters: Array<{ id: string; test: (state: Record<string, unknown>) => boolean; done: (at: number) => void }> = [];
  #loop: Promise<void> | undefined;

  constructor(url: string, creds: { client_id: string; client_secret: string }) {
    this.#session = new AppSession({ serverUrl: url, clientId: creds.client_id, clientSecret: creds.client_secret, logger: silentLogger() });
  }

  async start(): Promise<void> {
    const full = await this.#session.delta({ last_sync: null, include_deleted: false });
    let watermark = full.serverTime;
    this.#loop = (async () => {
      while (!this.#stop.signal.aborted) {
        const delta = await this.#session.delta({ last_sync: watermark, include_deleted: true }, 25).catch(() => undefined);
        if (delta === undefined) {
          await sleep(100);
          continue;
        }
        const at = performance.now();
        watermark = delta.serverTime;
        for (const change of delta.changes) this.#seen(change, at);
      }
    })();
  }

  until(id: string, test: (state: Record<string, unknown>) => boolean, timeoutMs: number): Promise<number> {
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`no change of ${id} on the server within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({ id, test, done: (at) => (clearTimeout(timer), done(at)) });
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#session.close();
    await this.#loop;
  }

  #seen(change: WireChange, at: number): void {
    const state = change.data.state;
    if (typeof state !== 'object' || state === null || Array.isArray(state)) return;
    for (let i = this.#waiters.length - 1; i >= 0; i -= 1) {
      const w = this.#waiters[i];
      if (w === undefined || w.id !== change.entity_id || !w.test(Object.fromEntries(Object.entries(state)))) continue;
      this.#waiters.splice(i, 1);
      w.done(at);
    }
  }
}

/** The reference home load until `signal` aborts: 100 devices, 10 messages a second, every other one a repeat. */
export async function referenceLoad(client: MqttClient, signal: AbortSignal): Promise<number> {
  let sent = 0;
  const last = new Map<number, string>();
  const start = performance.now();
  while (!signal.aborted) {
    const d = sent % 100;
    const repeat = sent % 2 === 1 && last.has(d);
    const payload = repeat ? (last.get(d) ?? '{}') : JSON.stringify({ temperature: Math.round(Math.random() * 300) / 10, battery: 90 });
    last.set(d, payload);
    await client.publishAsync(`devices/ref-${d}/state`, payload, { qos: 1 });
    sent += 1;
    await sleep(Math.max(0, start + sent * 100 - performance.now())); // paced at 10 messages/s, whatever a publish costs
  }
  return sent;
}

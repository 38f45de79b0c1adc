/**
 * `app set | get | watch` as a user runs them: `node dist/cli.js app …` as a child process against the real sync
 * server (HMAC required) on port 0, credentials from the environment (or flags), another client pushing changes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { createSyncServer, parseServerConfig, type ClientCredentials, type SyncServer } from '../../src/server/index.js';
import { onLines } from '../../src/util/lines.js';
import { connectApp, type AppClient } from '../helpers/app-client.js';
import { assertBuilt, CLI } from '../helpers/daemon-process.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function envFor(url: string, creds: ClientCredentials | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, INBETWEENIES_SERVER_URL: url };
  delete env.INBETWEENIES_CLIENT_ID;
  delete env.INBETWEENIES_CLIENT_SECRET;
  if (creds) Object.assign(env, { INBETWEENIES_CLIENT_ID: creds.client_id, INBETWEENIES_CLIENT_SECRET: creds.client_secret });
  return env;
}

/** Runs the CLI to its end (asynchronously: the server answering it runs in this process). */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.once('error', reject);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Watcher {
  readonly proc: ChildProcess;
  readonly lines: string[];
  readonly stderr: string[];
  /** Resolves with the first stdout line after `from` that matches, and when it arrived. */
  next(predicate: (line: string) => boolean, timeoutMs: number): Promise<{ line: string; at: number }>;
  stop(): Promise<number | null>;
}

function watch(args: string[], env: NodeJS.ProcessEnv): Watcher {
  const proc = spawn(process.execPath, [CLI, 'app', 'watch', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const arrivals: number[] = [];
  const stderr: string[] = [];
  onLines(proc.stdout, (line) => {
    lines.push(line);
    arrivals.push(performance.now());
  });
  onLines(proc.stderr, (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    lines,
    stderr,
    async next(predicate, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = lines.findIndex(predicate);
        if (i >= 0) return { line: lines[i] ?? '', at: arrivals[i] ?? 0 };
        if (Date.now() > deadline) throw new Error(`no matching line; stdout ${JSON.stringify(lines)} stderr ${JSON.stringify(stderr)}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async stop() {
      proc.kill('SIGINT');
      return exited;
    },
  };
}

async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('app set / get', () => {
  let ts: TestServer;
  let creds: ClientCredentials;
  beforeAll(async () => {
    assertBuilt();
    ts = await startTestServer({ hmac: { required: true } });
    creds = await ts.addClient('home-app');
  });
  afterAll(async () => {
    await ts.close();
  });

  it('set merges a partial state into the current one: the other attributes are kept', async () => {
    const first = await cli(['app', 'set', 'plug-1', '{"power":"on","level":3}'], envFor(ts.url, creds));
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('plug-1: applied {"power":"on","level":3}\n');
    const second = await cli(['app', 'set', '--json', 'plug-1', '{"power":"off"}'], envFor(ts.url, creds));
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ status: 'applied', entity_type: 'entity_state', entity_id: 'plug-1', state: { power: 'off', level: 3 } });
    const held = (await ts.server.entities('home-app')).find((e) => e.entity_id === 'plug-1');
    expect(held?.data).toEqual({ device_id: 'plug-1', state: { power: 'off', level: 3 } });
  });

  it('get prints the state as the server holds it (text and --json); flags work as well as the environment', async () => {
    const app = await connectApp(ts.url, await ts.addClient('home-app'));
    await app.setState('lamp-7', { state: 'ON', brightness: 120 });
    await app.close();
    const text = await cli(['app', 'get', 'lamp-7'], envFor(ts.url, creds));
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^lamp-7 \{"state":"ON","brightness":120\} \(updated \d{4}-\d\d-\d\dT[\d:.]+Z\)\n$/);
    const json = await cli(
      ['app', 'get', '--json', '--server-url', ts.url, '--client-id', creds.client_id, '--client-secret', creds.client_secret, 'lamp-7'],
      envFor('http://127.0.0.1:1', undefined),
    );
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ entity_type: 'entity_state', entity_id: 'lamp-7', data: { device_id: 'lamp-7', state: { state: 'ON', brightness: 120 } } });
  });

  it('set pushes only the attributes it sets; history shows a version that lost, who wrote it and why', async () => {
    const device = await ts.addClient('home-app');
    const app = await connectApp(ts.url, device);
    await app.setState('lamp-h', { state: 'ON', brightness: 10 });
    await new Promise((r) => setTimeout(r, 1100)); // past the seed's 1 s tie window: the set is the later version
    const set = await cli(['app', 'set', 'lamp-h', '{"state":"OFF"}'], envFor(ts.url, creds));
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    // A device version stamped before the app's set arrives after it: its state loses, its brightness stays.
    const { TestClient } = await import('../server/client.js');
    const raw = new TestClient(ts.url, device, { sign: device });
    await raw.login();
    const held = (await ts.server.entities('home-app')).find((e) => e.entity_id === 'lamp-h');
    const older = new Date(held!.updated_at / 1000 - 5000).toISOString();
    await raw.pushOk([{ entity_type: 'entity_state', entity_id: 'lamp-h', operation: 'update', data: { device_id: 'lamp-h', state: { state: 'ON' } }, updated_at: older, client_sync_id: 'late-device', partial: true }]);
    await app.close();
    const history = await cli(['app', 'history', 'lamp-h'], envFor(ts.url, creds));
    expect(history.code).toBe(0);
    expect(history.stdout).toContain(`lost newer_on_server {"state":"ON"} written by ${device.client_id}`);
    expect(history.stdout).toContain(`overwritten newer_on_client {"state":"ON"} written by ${device.client_id}`);
    const json = await cli(['app', 'history', '--json', '--limit', '1', 'lamp-h'], envFor(ts.url, creds));
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ type: 'history', entity_id: 'lamp-h', more: true, entries: [{ why: 'lost', written_by: device.client_id }] });
    const usage = await cli(['app', 'history'], envFor(ts.url, creds));
    expect(usage.code).toBe(2);
  });

  it('exit 1 with a reason: an unknown device, a wrong secret, an unreachable server', async () => {
    const missing = await cli(['app', 'get', 'no-such-device'], envFor(ts.url, creds));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no state for device "no-such-device"/);
    const wrong = await cli(['app', 'get', 'plug-1'], envFor(ts.url, { ...creds, client_secret: 'f'.repeat(64) }));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^app get failed: (UNAUTHORIZED|BAD_SIGNATURE): /);
    const down = await cli(['app', 'get', 'plug-1'], envFor('http://127.0.0.1:1', creds));
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^app get failed: TRANSPORT: .*ECONNREFUSED/);
  });

  it('exit 2 on bad usage, 0 on --help', async () => {
    const env = envFor(ts.url, creds);
    const cases: [string[], RegExp][] = [
      [['app', 'set', 'plug-1', '[1,2]'], /JSON: expected a JSON object of attributes/],
      [['app', 'set', 'plug-1', '{"a":'], /JSON: expected a JSON object/],
      [['app', 'set', 'plug-1'], /app set takes DEVICE_ID and JSON, got 1 argument/],
      [['app', 'get'], /app get takes DEVICE_ID, got 0 argument/],
      [['app', 'frobnicate'], /unknown app command "frobnicate"/],
      [['app', 'get', '--bogus', 'x'], /Unknown option '--bogus'/],
      [['app', 'watch', '--wait', 'soon'], /--wait: expected an integer 1\.\.3600, got "soon"/],
      [['app', 'get', '--server-url', 'ftp://x', 'plug-1'], /--server-url: expected an http\(s\) URL/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args, env);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
    }
    const noCreds = await cli(['app', 'get', 'plug-1'], envFor(ts.url, undefined));
    expect(noCreds.code).toBe(2);
    expect(noCreds.stderr).toMatch(/a client id is needed: --client-id ID or INBETWEENIES_CLIENT_ID/);
    const help = await cli(['app', 'set', '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/app set +\[connection\] \[--json\] DEVICE_ID JSON/);
  });
});

describe('app watch', () => {
  let server: SyncServer;
  let url: string;
  let port: number;
  let dataDir: string;
  let app: AppClient;
  let creds: ClientCredentials;
  beforeAll(async () => {
    assertBuilt();
    const ts = await startTestServer({ hmac: { required: true } });
    // Keep the data dir across a restart on the same port (the watcher must reconnect to it).
    ({ server, url, dataDir } = ts);
    port = Number(new URL(url).port);
    creds = await server.addClient('home-watch');
    app = await connectApp(url, await server.addClient('home-watch'));
  });
  afterAll(async () => {
    await app?.close();
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('--json prints, within a second, the change another client pushes; Ctrl-C exits 0', async () => {
    const watcher = watch(['--json'], envFor(url, creds));
    try {
      await until(() => server.liveStats().held === 1, 15_000, 'the watcher to hold a live wait');
      const pushed = performance.now();
      await app.setState('plug-9', { power: 'on' });
      const { line, at } = await watcher.next((l) => l.includes('plug-9'), 5_000);
      const change = JSON.parse(line);
      expect(change).toMatchObject({ entity_type: 'entity_state', entity_id: 'plug-9', operation: 'create', data: { state: { power: 'on' } } });
      expect(at - pushed).toBeLessThan(1000);
    } finally {
      expect(await watcher.stop()).toBe(0);
    }
    expect(server.liveStats().held).toBe(0);
  });

  it('prints text lines, --initial first, and reconnects by itself after the server restarts', async () => {
    await app.setState('lamp-1', { state: 'OFF' });
    const watcher = watch(['--initial'], envFor(url, creds));
    try {
      await watcher.next((l) => / entity_state lamp-1 create \{"state":"OFF"\}$/.test(l), 15_000);
      await until(() => server.liveStats().held === 1, 15_000, 'the watcher to hold a live wait');
      await server.close(); // answers the held wait with reason "shutdown"
      const config = parseServerConfig({ host: '127.0.0.1', port, dataDir, hmac: { required: true }, log: { level: 'silent' } });
      server = createSyncServer({ config, logger: silentLogger() });
      await server.listen();
      await until(() => server.liveStats().held === 1, 20_000, 'the watcher to hold a wait on the new server');
      await app.close();
      app = await connectApp(url, await server.addClient('home-watch'));
      await app.setState('lamp-1', { state: 'ON' });
      const { line } = await watcher.next((l) => / entity_state lamp-1 update \{"state":"ON"\}$/.test(l), 5_000);
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z entity_state lamp-1 update \{"state":"ON"\}$/);
      expect(watcher.stderr.join('\n')).toMatch(/the server is shutting down: reconnecting/);
    } finally {
      expect(await watcher.stop()).toBe(0);
    }
  });
});

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { loadServerConfig, runServerCommand } from '../../src/server/index.js';
import { send } from './client.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ib-cli-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

function capture(): { out: string[]; err: string[]; io: { stdout: (t: string) => void; stderr: (t: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) } };
}

describe('server config', () => {
  it('loads the example config with its documented values', () => {
    const config = loadServerConfig('config/server.example.yaml');
    expect(config).toMatchObject({ host: '127.0.0.1', port: 8000, dataDir: './data', pageSize: 1000, hmac: { required: true, windowSeconds: 300 } });
  });

  it('runs on defaults without a file (HMAC optional) and lets overrides win', () => {
    const config = loadServerConfig(undefined, { port: 9001, dataDir: '/tmp/x' });
    expect(config).toMatchObject({ host: '127.0.0.1', port: 9001, dataDir: '/tmp/x', hmac: { required: false }, rateLimit: { ratePerSecond: 20, burst: 60 } });
  });

  it('lists every problem at once, with its path', () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'port: 99999\npageSize: 0\nhmac:\n  required: maybe\nrateLimit:\n  burts: 3\ntypo: 1\n');
    let error: unknown;
    try {
      loadServerConfig(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const path of ['port', 'pageSize', 'hmac.required', 'rateLimit', 'typo']) expect(problems).toContain(path);
    expect((error as ConfigError).problems.length).toBeGreaterThanOrEqual(5);
  });

  it('reports YAML syntax errors and a missing file as ConfigError', () => {
    const dir = tempDir();
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'port: [1, 2\n');
    expect(() => loadServerConfig(file)).toThrow(ConfigError);
    expect(() => loadServerConfig(join(dir, 'missing.yaml'))).toThrow(ConfigError);
  });
});

describe('server CLI', () => {
  it('add-client prints one JSON credential and creates server.db with mode 0600', async () => {
    const dir = tempDir();
    const { out, io } = capture();
    expect(await runServerCommand(['add-client', '--data-dir', dir, '--home', 'home-cli'], io)).toBe(0);
    expect(out).toHaveLength(1);
    const creds = JSON.parse(out[0] as string);
    expect(creds).toEqual({ client_id: expect.stringMatching(/^gw-/), client_secret: expect.stringMatching(/^[0-9a-f]{64}$/), home_id: 'home-cli' });
    expect(statSync(join(dir, 'server.db')).mode & 0o777).toBe(0o600);
  });

  it('exits 2 with every problem for a bad config and for bad flags', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'port: -1\nlog:\n  level: loud\n');
    const bad = capture();
    expect(await runServerCommand(['--config', file], bad.io)).toBe(2);
    expect(bad.err.join('')).toContain('port');
    expect(bad.err.join('')).toContain('log.level');
    const flags = capture();
    expect(await runServerCommand(['--port', 'eighty'], flags.io)).toBe(2);
    expect(await runServerCommand(['--bogus'], capture().io)).toBe(2);
    expect(await runServerCommand(['add-client', '--data-dir', dir], capture().io)).toBe(2);
    expect(await runServerCommand(['add-client', '--data-dir', dir, '--home', 'h'.repeat(300)], capture().io)).toBe(2);
  });

  it('serves with flags overriding the file, and a credential from add-client works against it', async () => {
    const dir = tempDir();
    const file = join(dir, 'server.yaml');
    writeFileSync(file, `host: 127.0.0.1\nport: 8000\ndataDir: ${join(dir, 'ignored')}\nlog:\n  level: silent\n`);
    const add = capture();
    await runServerCommand(['server', 'add-client', '--data-dir', join(dir, 'data'), '--home', 'h'], add.io);
    const creds = JSON.parse(add.out[0] as string);
    const controller = new AbortController();
    let url = '';
    let exited: Promise<number> | undefined;
    const listening = new Promise<void>((resolve) => {
      const run = runServerCommand(['--config', file, '--port', '0', '--data-dir', join(dir, 'data')], {
        ...capture().io,
        signal: controller.signal,
        onListening: (u) => {
          url = u;
          resolve();
        },
      });
      exited = run;
    });
    await listening;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toContain(':8000');
    const token = await send(url, '/api/v1/auth/token', { client_id: creds.client_id, client_secret: creds.client_secret });
    expect(token.status).toBe(200);
    controller.abort();
    expect(await exited).toBe(0);
  });
});

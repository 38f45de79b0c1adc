/**
 * Secrets readable by other users: the store (access and refresh tokens), its -wal and -shm are created 0600 in a
 * 0700 directory whatever the umask; the daemon refuses to start on a store others can read, and on a config file
 * holding the client secret that any user can read, each time naming the chmod that fixes it. The built daemon as a
 * child process, as systemd runs it.
 */
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, spawnDaemon, type DaemonProcess } from '../helpers/daemon-process.js';

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(4, '0');

describe('files holding secrets are private', () => {
  const root = mkdtempSync(join(tmpdir(), 'ib-private-'));
  let umask = 0;
  let daemon: DaemonProcess | undefined;
  beforeAll(() => {
    umask = process.umask(0o022); // the usual umask outside systemd: files 0644, directories 0755 unless told
  });
  afterAll(() => {
    process.umask(umask);
    rmSync(root, { recursive: true, force: true });
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  function run(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } {
    const r = spawnSync(process.execPath, [CLI, 'run', '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', ...args], {
      env: { ...process.env, INBETWEENIES_LOG_LEVEL: 'warn', ...env },
      encoding: 'utf8',
      timeout: 15_000,
    });
    return { status: r.status, stderr: r.stderr };
  }

  it('creates the store, its -wal and -shm 0600 in a new 0700 directory under umask 022', async () => {
    const dataDir = join(root, 'fresh', 'data');
    daemon = await spawnDaemon({ dataDir, clientId: 'gw-x', clientSecret: 'not-a-real-secret', serverUrl: 'http://127.0.0.1:9' });
    const db = join(dataDir, 'gateway.db');
    expect(mode(dataDir)).toBe('0700');
    expect([mode(db), mode(`${db}-wal`), mode(`${db}-shm`)]).toEqual(['0600', '0600', '0600']);
  });

  it('refuses a store that other users can read, naming the chmod that fixes it', async () => {
    const dataDir = join(root, 'loose');
    daemon = await spawnDaemon({ dataDir });
    await daemon.stop();
    daemon = undefined;
    const db = join(dataDir, 'gateway.db');
    chmodSync(db, 0o644);
    const refused = run(['--data-dir', dataDir]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${db} (mode 0644)`);
    expect(refused.stderr).toContain(`chmod 600 ${db}`);
    expect(refused.stderr).toContain('access and refresh tokens');
    chmodSync(db, 0o640); // readable by the group: refused too
    expect(run(['--data-dir', dataDir]).status).toBe(1);
    chmodSync(db, 0o600);
    daemon = await spawnDaemon({ dataDir });
  });

  it('refuses a config file holding the client secret that any user can read; group-readable (0640) is fine', async () => {
    const dataDir = join(root, 'cfg');
    const file = join(root, 'gateway.yaml');
    writeFileSync(file, 'server:\n  url: http://127.0.0.1:9\n  clientId: gw-x\n  clientSecret: s3cret-in-the-file\nlog:\n  level: warn\n');
    chmodSync(file, 0o644);
    const refused = run(['--config', file, '--data-dir', dataDir]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`chmod o-rwx ${file}`);
    expect(refused.stderr).toContain('server.clientSecret');
    expect(refused.stderr).not.toContain('s3cret-in-the-file');
    chmodSync(file, 0o640);
    daemon = await spawnDaemon({ dataDir, config: file });
    // Without a secret in it, a world-readable config is no one's business.
    await daemon.stop();
    daemon = undefined;
    const plain = join(root, 'plain.yaml');
    writeFileSync(plain, 'server:\n  url: http://127.0.0.1:9\n');
    chmodSync(plain, 0o644);
    daemon = await spawnDaemon({ dataDir, config: plain });
  });
});

/**
 * The server database holds the client secrets: server.db, its -wal and -shm are created 0600 in a 0700 directory
 * whatever the umask, and the server refuses to start — saying how to fix it — when any of them is open to others.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { SERVER_DB_FILE } from '../../src/server/db.js';
import { createSyncServer, parseServerConfig } from '../../src/server/index.js';
import { SERVER_CLI } from '../helpers/server-process.js';
import { startTestServer } from '../helpers/server.js';
import { deviceChange, isoAt, TestClient } from './client.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const mode = (path: string): number => statSync(path).mode & 0o777;

function base(): string {
  const d = mkdtempSync(join(tmpdir(), 'ib-modes-'));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('private files of the server', () => {
  it.each([
    ['000', 0o000],
    ['277', 0o277],
  ])('creates the data dir 0700 and server.db, -wal, -shm 0600 with umask %s', async (_label, umask) => {
    const dataDir = join(base(), 'nested', 'data');
    const previous = process.umask(umask);
    try {
      const ts = await startTestServer({}, { dataDir });
      cleanup.push(() => ts.close());
      const c = new TestClient(ts.url, await ts.addClient('home-m'));
      await c.login();
      await c.pushOk([deviceChange('d-1', 'One', isoAt(Date.now()))]);
      const db = join(dataDir, SERVER_DB_FILE);
      expect(existsSync(`${db}-wal`) && existsSync(`${db}-shm`)).toBe(true);
      expect(mode(dataDir)).toBe(0o700);
      for (const file of [db, `${db}-wal`, `${db}-shm`]) expect(mode(file)).toBe(0o600);
    } finally {
      process.umask(previous);
    }
  });

  it('refuses to start when server.db or its -wal can be read by others, and says how to fix it', async () => {
    const dataDir = base();
    const first = await startTestServer({}, { dataDir });
    await first.addClient('home-m');
    first.server.destroy();
    const db = join(dataDir, SERVER_DB_FILE);
    const holder = new Database(db); // another connection keeps the -wal (and -shm) in place
    cleanup.push(() => {
      holder.close();
    });
    holder.prepare("INSERT INTO meta (key, value) VALUES ('probe', '1')").run();
    for (const file of [db, `${db}-wal`]) {
      chmodSync(file, 0o644);
      const config = parseServerConfig({ dataDir, port: 0, log: { level: 'silent' } });
      let error: unknown;
      try {
        createSyncServer({ config, logger: silentLogger() }).destroy();
      } catch (err) {
        error = err;
      }
      expect(error).toMatchObject({ code: 'INSECURE_PERMISSIONS' });
      expect(String((error as Error).message)).toContain(`chmod 600 ${file}`);
      chmodSync(file, 0o600);
    }
    // the command line: exit 1, the message on stderr
    chmodSync(db, 0o640);
    const run = spawnSync(process.execPath, [SERVER_CLI, 'server', '--data-dir', dataDir, '--port', '0'], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('refusing to start');
    expect(run.stderr).toContain(`chmod 600 ${db}`);
  });
});

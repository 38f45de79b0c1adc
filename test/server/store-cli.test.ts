/**
 * The store commands as an operator runs them (the built CLI, `node dist/cli.js server …`) on a real PostgreSQL
 * database: `migrate` is idempotent and refuses a schema newer than the build knows; `add-client --database-url`
 * prints a credential; `export --data-dir` then `import --database-url` moves a SQLite store, the dump file private.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_SCHEMA_VERSION } from '../../src/server/pg/schema.js';
import { PgStore } from '../../src/server/pg/store.js';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';
import { freshDatabase } from '../helpers/pg.js';

const run = promisify(execFile);

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'server', ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('server migrate / add-client / export / import', () => {
  let dir: string;
  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'ib-store-cli-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('migrate is idempotent, and a newer schema is refused', async () => {
    const url = await freshDatabase('mig');
    const first = await cli(['migrate', '--database-url', url]);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ store: 'postgres', from: 0, to: PG_SCHEMA_VERSION, applied: PG_SCHEMA_VERSION });
    expect(first.stdout).not.toContain(new URL(url).password); // the URL is printed without its password
    const again = await cli(['migrate'], { INBETWEENIES_DATABASE_URL: url });
    expect(JSON.parse(again.stdout)).toMatchObject({ from: PG_SCHEMA_VERSION, applied: 0 });
    const admin = new pg.Client(url);
    await admin.connect();
    await admin.query('INSERT INTO ib_schema_version (version) VALUES ($1)', [PG_SCHEMA_VERSION + 1]);
    await admin.end();
    const newer = await cli(['migrate', '--database-url', url]);
    expect(newer.code).toBe(1);
    expect(newer.stderr).toMatch(/newer than this server knows/);
    await expect(PgStore.open({ url, clock: Date.now })).rejects.toThrow(/newer than this server knows/);
  });

  it('add-client works on PostgreSQL; export --data-dir then import --database-url moves a store', async () => {
    const dataDir = join(dir, 'sqlite');
    const added = await cli(['add-client', '--data-dir', dataDir, '--home', 'home-cli']);
    expect(added.code).toBe(0);
    const sqliteClient = JSON.parse(added.stdout) as { client_id: string };
    const dump = join(dir, 'dump.jsonl');
    const exported = await cli(['export', '--data-dir', dataDir, '--out', dump]);
    expect(exported.code).toBe(0);
    expect(statSync(dump).mode & 0o777).toBe(0o600);
    const url = await freshDatabase('cli');
    const imported = await cli(['import', '--database-url', url, '--in', dump]);
    expect(JSON.parse(imported.stdout)).toMatchObject({ counts: { home: 1, client: 1 } });
    const pgClient = await cli(['add-client', '--database-url', url, '--home', 'home-cli']);
    expect(pgClient.code).toBe(0);
    const store = await PgStore.open({ url, clock: Date.now });
    try {
      expect(await store.getClient(sqliteClient.client_id)).toMatchObject({ homeId: 'home-cli' });
      expect(await store.getClient((JSON.parse(pgClient.stdout) as { client_id: string }).client_id)).toMatchObject({ homeId: 'home-cli' });
    } finally {
      await store.close();
    }
    const both = await cli(['export', '--data-dir', dataDir, '--database-url', url, '--out', join(dir, 'x.jsonl')]);
    expect(both.code).toBe(2);
    const again = await cli(['import', '--database-url', url, '--in', dump]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds homes/);
  });
});

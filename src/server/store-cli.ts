/**
 * `server` sub-commands that work on a store rather than serve it (docs/operations.md §The sync server on
 * PostgreSQL):
 *   server migrate   (--database-url URL | --data-dir DIR)              bring the schema to this build's; idempotent
 *   server export    (--database-url URL | --data-dir DIR) --out FILE   write the portable dump (mode 0600)
 *   server import    (--database-url URL | --data-dir DIR) --in FILE    fill an empty store from a dump
 * The database URL may also come from INBETWEENIES_DATABASE_URL (keeps the password out of `ps`). Each prints one
 * JSON object on success. Exit codes: 0 ok, 2 bad usage, 1 failure (the message says why).
 */
import { parseArgs } from 'node:util';
import { openServerDb } from './db.js';
import { createPgClient, redactDatabaseUrl } from './pg/connect.js';
import { migratePg } from './pg/migrate.js';
import { PgStore } from './pg/store.js';
import { exportPg, importPg } from './transfer/pg.js';
import { exportSqlite, importSqlite } from './transfer/sqlite.js';

export interface StoreCommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env?: NodeJS.ProcessEnv;
}

export const STORE_USAGE = `  inbetweenies-gateway server migrate (--database-url URL | --data-dir DIR)
  inbetweenies-gateway server export (--database-url URL | --data-dir DIR) --out FILE
  inbetweenies-gateway server import (--database-url URL | --data-dir DIR) --in FILE
  inbetweenies-gateway server add-client --database-url URL --home HOME_ID
  (INBETWEENIES_DATABASE_URL may stand for --database-url)
`;

export const STORE_COMMANDS: ReadonlySet<string> = new Set(['migrate', 'export', 'import']);

type Target = { kind: 'postgres'; url: string } | { kind: 'sqlite'; dataDir: string };

/** The store a command works on: --database-url (or the environment) or --data-dir; exactly one. */
export function storeTarget(values: { 'database-url'?: string; 'data-dir'?: string }, env: NodeJS.ProcessEnv): Target | string {
  const url = values['database-url'] ?? (values['data-dir'] === undefined ? env.INBETWEENIES_DATABASE_URL : undefined);
  if (url !== undefined && values['data-dir'] !== undefined) return 'give either --database-url or --data-dir, not both';
  if (url !== undefined) return { kind: 'postgres', url };
  if (values['data-dir'] !== undefined) return { kind: 'sqlite', dataDir: values['data-dir'] };
  return 'which store? give --database-url URL (PostgreSQL) or --data-dir DIR (SQLite)';
}

async function migrate(target: Target): Promise<Record<string, unknown>> {
  if (target.kind === 'sqlite') {
    openServerDb(target.dataDir).close(); // opening migrates
    return { store: 'sqlite', dataDir: target.dataDir, migrated: true };
  }
  const client = createPgClient({ url: target.url, applicationName: 'inbetweenies-migrate' });
  await client.connect();
  try {
    return { store: 'postgres', database: redactDatabaseUrl(target.url), ...(await migratePg(client)) };
  } finally {
    await client.end();
  }
}

/** Runs `server migrate|export|import …` (`args` after the sub-command name). */
export async function runStoreCommand(sub: string, args: string[], io: StoreCommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'database-url': { type: 'string' }, 'data-dir': { type: 'string' }, out: { type: 'string' }, in: { type: 'string' } },
    strict: true,
  });
  const target = storeTarget(values, io.env ?? process.env);
  if (typeof target === 'string') {
    io.stderr(`server ${sub}: ${target}\n${STORE_USAGE}`);
    return 2;
  }
  let result: Record<string, unknown>;
  if (sub === 'migrate') {
    result = await migrate(target);
  } else if (sub === 'export') {
    if (values.out === undefined) {
      io.stderr(`server export: --out FILE is required\n${STORE_USAGE}`);
      return 2;
    }
    const counts = target.kind === 'postgres' ? await exportPg(target.url, values.out) : await exportSqlite(target.dataDir, values.out);
    result = { exported: values.out, counts };
  } else if (sub === 'import') {
    if (values.in === undefined) {
      io.stderr(`server import: --in FILE is required\n${STORE_USAGE}`);
      return 2;
    }
    const counts = target.kind === 'postgres' ? await importPg(target.url, values.in) : await importSqlite(target.dataDir, values.in);
    result = { imported: values.in, counts };
  } else {
    io.stderr(`server: unknown sub-command ${JSON.stringify(sub)}\n${STORE_USAGE}`);
    return 2;
  }
  io.stdout(`${JSON.stringify(result)}\n`);
  return 0;
}

/** `server add-client --database-url URL --home HOME_ID` on PostgreSQL. */
export async function addPgClient(url: string, homeId: string): Promise<string> {
  const store = await PgStore.open({ url, clock: Date.now });
  try {
    return JSON.stringify(await store.addClient(homeId));
  } finally {
    await store.close();
  }
}

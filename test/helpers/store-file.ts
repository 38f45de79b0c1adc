/**
 * Tests read (and, to set up a case, write) a gateway store's rows with SQL through connections of their own: the
 * code under test never hands out its connections (only src/store/ holds them).
 */
import Database from 'better-sqlite3';
import type { GatewayDaemon } from '../../src/daemon/gateway-daemon.js';

export type RawDb = Database.Database;

/** A connection of the test's own to a store file: read-only unless `writable` (setting up rows). */
export function openStoreFile(path: string, options: { writable?: boolean } = {}): RawDb {
  const db = new Database(path, { readonly: !options.writable, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  return db;
}

/** Runs `read` on a fresh read-only connection to the running daemon's store file. */
export function queryStore<T>(daemon: GatewayDaemon, read: (db: RawDb) => T): T {
  const path = daemon.store?.path;
  if (path === undefined) throw new Error('the daemon is not running (no store)');
  const db = openStoreFile(path);
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/**
 * An online, consistent copy of the store (`inbetweenies-gateway backup FILE`) with SQLite's backup API
 * (better-sqlite3 `db.backup()`), taken from a read connection while the daemon may be writing:
 *
 * 1. the copy goes to a temporary file beside FILE, created 0600 (it holds the server tokens), never to FILE itself;
 * 2. every page is copied in one backup step, which runs inside one read transaction: the copy is the store as of
 *    one commit (WAL readers never block the writer, and a step-by-step copy would restart on every write);
 * 3. the copy is turned into a single self-contained file (journal_mode DELETE: no -wal beside it), checked with
 *    `PRAGMA integrity_check`, and committed with SQLite's fsync;
 * 4. it is renamed over FILE and the folder is fsynced: FILE is either the old file or the whole new copy.
 */
import Database from 'better-sqlite3';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { GatewayError } from '../errors.js';
import type { Db } from './db.js';

export interface BackupResult {
  /** Absolute path of the copy. */
  readonly path: string;
  readonly bytes: number;
  readonly pages: number;
}

/** Pages per backup step: all of them, in one step (one read transaction). */
const ALL_PAGES = 0x7fffffff;

export async function backupDatabase(source: Db, file: string): Promise<BackupResult> {
  const path = resolve(file);
  const dir = dirname(path);
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    closeSync(openSync(tmp, 'wx', 0o600));
  } catch (err) {
    throw new GatewayError('STORE', `cannot create ${tmp}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    const copied = await source.backup(tmp, { progress: () => ALL_PAGES });
    finishCopy(tmp);
    renameSync(tmp, path);
    syncFolder(dir);
    return { path, bytes: statSync(path).size, pages: copied.totalPages };
  } catch (err) {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}-journal`, { force: true });
    if (err instanceof GatewayError) throw err;
    throw new GatewayError('STORE', `backup to ${path} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** A single self-contained file (no WAL), checked page by page. */
function finishCopy(tmp: string): void {
  const copy = new Database(tmp, { fileMustExist: true });
  try {
    copy.pragma('journal_mode = DELETE');
    // The first row is 'ok' only when there is no problem at all (SQLite's integrity_check).
    const first: unknown = copy.pragma('integrity_check', { simple: true });
    if (first !== 'ok') throw new GatewayError('STORE', `the copy failed its integrity check: ${String(first)}`);
  } finally {
    copy.close();
  }
}

function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

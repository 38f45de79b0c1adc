/**
 * Reads of the conflict log (the `conflicts` table): the most recent entries with both versions, for the
 * `conflicts` command and the daemon's status page. A version that is not JSON is reported (logged and counted as a
 * corrupt `conflicts` row) and read as null; the row is left as it is.
 */
import type Database from 'better-sqlite3';
import type { Db } from './db.js';
import type { ConflictEntry, CorruptRow } from './types.js';

interface ConflictRow {
  id: number;
  recorded_at: number;
  entity_type: string;
  entity_id: string;
  type: string;
  reason: string;
  resolution: string;
  server_version: string | null;
  client_version: string | null;
}

/** The most entries one read returns (a bound on memory whatever the caller asks). */
export const MAX_CONFLICTS_READ = 1000;

export class ConflictReads {
  readonly #report: (row: CorruptRow) => void;
  readonly #recent: Database.Statement<[number], ConflictRow>;

  constructor(db: Db, report: (row: CorruptRow) => void) {
    this.#report = report;
    this.#recent = db.prepare('SELECT * FROM conflicts ORDER BY recorded_at DESC, id DESC LIMIT ?');
  }

  /** Up to `limit` entries (at most MAX_CONFLICTS_READ), newest first. */
  recent(limit: number): ConflictEntry[] {
    const n = Math.max(0, Math.min(MAX_CONFLICTS_READ, Math.floor(limit)));
    return this.#recent.all(n).map((row) => ({
      id: row.id,
      recordedAt: row.recorded_at,
      entityType: row.entity_type,
      entityId: row.entity_id,
      type: row.type,
      reason: row.reason,
      resolution: row.resolution,
      serverVersion: this.#version(row, 'server_version'),
      clientVersion: this.#version(row, 'client_version'),
    }));
  }

  #version(row: ConflictRow, column: 'server_version' | 'client_version'): unknown {
    const text = row[column];
    if (text === null) return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      this.#report({ table: 'conflicts', key: `${row.id}.${column}`, problem: `not JSON: ${err instanceof Error ? err.message : String(err)}` });
      return null;
    }
  }
}

/**
 * Read-only looks into a server's file while it runs (the loss oracle of the soak and chaos tests, src/soak/oracle.ts):
 * the live entity_state data of a home, and how many times any pushed change was applied. Opens its own read-only
 * connection and closes it; never creates or migrates the file.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { z } from 'zod';
import { SERVER_DB_FILE } from '../db.js';

const StateRow = z.object({ entity_id: z.string(), data: z.string() });

function readOnly<T>(dataDir: string, read: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, SERVER_DB_FILE), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** `data` (JSON text) of every live entity_state of `home`, by entity id. */
export function liveStateData(dataDir: string, home: string): Array<{ entityId: string; data: string }> {
  return readOnly(dataDir, (db) =>
    z
      .array(StateRow)
      .parse(db.prepare("SELECT entity_id, data FROM entities WHERE home_id = ? AND entity_type = 'entity_state' AND deleted = 0").all(home))
      .map((r) => ({ entityId: r.entity_id, data: r.data })),
  );
}

/** The most times any pushed change (client_id, client_sync_id) was written; 0 when none was. */
export function maxPushApplications(dataDir: string): number {
  return readOnly(dataDir, (db) => z.number().parse(db.prepare('SELECT COALESCE(MAX(applications), 0) FROM push_results').pluck().get()));
}

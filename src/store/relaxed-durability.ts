/**
 * Relaxed durability for the sync side of the gateway store: ONE place that commits a transaction without fsync
 * (`PRAGMA synchronous = NORMAL` for that commit only), used by the sync repositories (sync-outbox.ts,
 * sync-remote.ts) and the sync client's status rows. Ingest never uses it.
 *
 * Why this is safe (design.md §Durable ingest, §Idempotency, §Watermark, §Outbox; docs/architecture.md §Durability):
 * - The only promise that needs an fsync at commit time is the PUBACK of a QoS 1 message: ingest commits with the
 *   connection's default, synchronous=FULL, before aedes acknowledges (design.md §Durable ingest).
 * - Everything the sync side writes can be redone from what survives a power cut:
 *   · attempts counters, status rows (last_sync_at, last_result, last_error): diagnostics only;
 *   · a delta page and its watermark (last_sync): a lost watermark pulls the same pages again from the older one,
 *     and applying them again is idempotent (echo check by sync_id, upsert), design.md §Watermark;
 *   · a push result: the outbox row is cleared only by that same transaction, so a lost result leaves the row in the
 *     outbox; it is pushed again with the same client_sync_id and the server answers with its stored result,
 *     applying nothing twice (design.md §Idempotency). A lost response on the network already leads to this state.
 *   · downlink commands emitted after such a commit are emitted again when the page is pulled again: a repeated
 *     "set" to a device is harmless.
 *   · an ack sent for a watermark that is then lost can only let the server purge tombstones the gateway has not
 *     kept: its next sync_request is older than the purge and gets INVALID_SYNC_STATE, and the full resync that
 *     follows reconciles (design.md §Deletes).
 * - WAL keeps commit order: frames are appended in order and recovery replays a prefix of them, so what a power cut
 *   can lose is always a suffix of recent NORMAL commits, never a commit before a surviving one; and the next FULL
 *   commit (ingest) fsyncs the WAL with every earlier NORMAL frame in it. The reachable states after a power cut are
 *   therefore the same as if the process had died just before the first lost sync commit — which the sync client
 *   already handles.
 *
 * better-sqlite3 is synchronous, so nothing else (ingest's group commit on the same connection) can run between the
 * two pragmas; the previous level is restored in a finally, also when the transaction throws and rolls back.
 */
import type { Db } from './db.js';

/**
 * Runs `fn` in a transaction committed with synchronous=NORMAL (no fsync), then restores the connection's level.
 * Inside an enclosing transaction it just runs `fn`: the enclosing commit decides durability.
 */
export function relaxedTransaction<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  const previous = Number(db.pragma('synchronous', { simple: true }));
  if (previous <= 1) return db.transaction(fn)(); // already OFF (0) or NORMAL (1): nothing to relax
  db.pragma('synchronous = NORMAL');
  try {
    return db.transaction(fn)();
  } finally {
    db.pragma(`synchronous = ${previous}`);
  }
}

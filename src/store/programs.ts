/**
 * The store's own write programs: the small row writes its parts offer (sync state, outbox attempts and re-stamping,
 * conflict pruning, the health probe). Rules that combine rows live with their layer (ingest's local updates,
 * sync's delta pages and push results).
 */
import { defineWriteProgram } from './writer.js';

/** sync_state rows, in one transaction: value JSON, or null to delete the row. */
export const SET_STATE = defineWriteProgram(import.meta.url, 'store.setState', (tx, entries: ReadonlyArray<readonly [string, string | null]>): void => {
  for (const [key, json] of entries) {
    if (json === null) tx.deleteState(key);
    else tx.setState(key, json);
  }
});

/** Counts a push of these versions that got no sync_result (transport failure, error answer). */
export const BUMP_ATTEMPTS = defineWriteProgram(
  import.meta.url,
  'store.bumpAttempts',
  (tx, changes: ReadonlyArray<{ entityType: string; entityId: string; clientSyncId: string }>): void => {
    for (const c of changes) tx.bumpAttempts(c.entityType, c.entityId, c.clientSyncId);
  },
);

/** Shifts pending changes (and the local versions they carry) by `deltaMicros`; returns the rows shifted. */
export const REBASE_PENDING = defineWriteProgram(import.meta.url, 'store.rebasePending', (tx, deltaMicros: number): number =>
  tx.rebasePending(Math.round(deltaMicros)),
);

export const PRUNE_CONFLICTS = defineWriteProgram(import.meta.url, 'store.pruneConflicts', (tx, beforeMs: number): number => tx.pruneConflicts(beforeMs));

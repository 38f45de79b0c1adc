/** A conflict entry from the server (sync_result or sync_delta) as a conflict-log record. */
import { normaliseEntityType, type WireConflict } from '../protocol/index.js';
import type { ConflictRecord } from '../store/types.js';

export function conflictRecordOf(conflict: WireConflict): ConflictRecord {
  return {
    entityType: normaliseEntityType(conflict.entity_type) ?? conflict.entity_type,
    entityId: conflict.entity_id,
    type: conflict.type,
    reason: conflict.reason,
    resolution: conflict.resolution,
    serverVersion: conflict.server_version,
    clientVersion: conflict.client_version,
  };
}

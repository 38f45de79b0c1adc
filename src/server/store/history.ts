/**
 * Sync history (extension; docs/protocol.md §Sync history; seed §Future Enhancements "Sync History: Audit trail of
 * all syncs"): every version that loses a resolution, and every stored version a newer one overwrites, is kept per
 * home with who wrote it, who decided against it and why, bounded by age and by a count per entity.
 */
import { formatTimestamp, type Micros, type Operation, type WireHistoryEntry } from '../../protocol/index.js';
import type { ServerDb } from '../db.js';

export interface HistoryRecord {
  readonly homeId: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly why: 'lost' | 'overwritten';
  readonly reason: string;
  readonly operation: Operation;
  /** The version's data (attribute-level: only the attributes concerned, in `state`). */
  readonly data: Record<string, unknown>;
  readonly attributes?: readonly string[];
  readonly updatedAt: Micros;
  readonly claimedAt?: Micros | null;
  readonly syncId: string;
  readonly writtenBy: string | null;
  readonly decidedBy: string | null;
}

export interface HistoryQuery {
  readonly homeId: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly limit: number;
  /** Entries with an id below this (the previous page's `next_before`). */
  readonly before: number | null;
}

interface HistoryRow {
  id: number;
  entity_type: string;
  entity_id: string;
  recorded_at: number;
  why: 'lost' | 'overwritten';
  reason: string;
  operation: Operation;
  data: string;
  attributes: string | null;
  updated_at: number;
  claimed_at: number | null;
  sync_id: string;
  written_by: string | null;
  decided_by: string | null;
}

export class HistoryStore {
  private readonly db: ServerDb;
  private readonly stmts;

  constructor(db: ServerDb) {
    this.db = db;
    this.stmts = {
      put: db.prepare(`INSERT INTO history (home_id, entity_type, entity_id, recorded_at, why, reason, operation, data,
        attributes, updated_at, claimed_at, sync_id, written_by, decided_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      page: db.prepare(`SELECT * FROM history WHERE home_id = @home AND entity_type = @type AND entity_id = @id
        AND id < @before ORDER BY id DESC LIMIT @limit`),
      old: db.prepare('DELETE FROM history WHERE recorded_at < ?'),
      overCap: db.prepare(`DELETE FROM history WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER
        (PARTITION BY home_id, entity_type, entity_id ORDER BY id DESC) AS n FROM history) WHERE n > ?)`),
    };
  }

  /** Records one entry (inside the push's transaction: it is durable with the push). */
  record(r: HistoryRecord, recordedAtMs: number): void {
    this.stmts.put.run(
      r.homeId,
      r.entityType,
      r.entityId,
      recordedAtMs,
      r.why,
      r.reason,
      r.operation,
      JSON.stringify(r.data),
      r.attributes === undefined ? null : JSON.stringify(r.attributes),
      r.updatedAt,
      r.claimedAt ?? null,
      r.syncId,
      r.writtenBy,
      r.decidedBy,
    );
  }

  /** Newest first; one row more than `limit` tells whether there is more. */
  page(q: HistoryQuery): { entries: WireHistoryEntry[]; more: boolean; nextBefore: number | null } {
    const rows = this.stmts.page.all({
      home: q.homeId,
      type: q.entityType,
      id: q.entityId,
      before: q.before ?? Number.MAX_SAFE_INTEGER,
      limit: q.limit + 1,
    }) as HistoryRow[];
    const more = rows.length > q.limit;
    const kept = more ? rows.slice(0, q.limit) : rows;
    const last = kept[kept.length - 1];
    return { entries: kept.map(toWire), more, nextBefore: more && last !== undefined ? last.id : null };
  }

  /** Forgets entries older than `retentionSeconds` and beyond `maxPerEntity` per entity (the newest are kept). */
  purge(nowMs: number, retentionSeconds: number, maxPerEntity: number): number {
    return this.db.transaction(() => this.stmts.old.run(nowMs - retentionSeconds * 1000).changes + this.stmts.overCap.run(maxPerEntity).changes)();
  }
}

function toWire(r: HistoryRow): WireHistoryEntry {
  const entry: WireHistoryEntry = {
    id: r.id,
    recorded_at: formatTimestamp(r.recorded_at * 1000),
    why: r.why,
    reason: r.reason,
    entity_type: r.entity_type,
    entity_id: r.entity_id,
    operation: r.operation,
    data: JSON.parse(r.data) as Record<string, unknown>, // written by record() as a JSON object
    updated_at: formatTimestamp(r.updated_at),
    sync_id: r.sync_id,
    written_by: r.written_by,
    decided_by: r.decided_by,
  };
  if (r.attributes !== null) entry.attributes = JSON.parse(r.attributes) as string[];
  if (r.claimed_at !== null) entry.claimed_updated_at = formatTimestamp(r.claimed_at);
  return entry;
}

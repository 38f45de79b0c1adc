/**
 * Sync history (extension; docs/protocol.md §Sync history; seed §Future Enhancements "Sync History: Audit trail of
 * all syncs"): every version that loses a resolution, and every stored version a newer one overwrites, is kept per
 * home with who wrote it, who decided against it and why, bounded by age and by a count per entity.
 */
import { z } from 'zod';
import { DataSchema, formatTimestamp, type Micros, type Operation, type WireHistoryEntry } from '../../protocol/index.js';
import type { ServerDb } from '../db.js';
import type { HistoryPage, HistoryQuery } from './contract.js';
import { rowsOf } from './rows.js';

export type { HistoryPage, HistoryQuery } from './contract.js';

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

/** A history row as either database returns it, checked at the boundary (`data` and `attributes` are JSON texts). */
export const HistoryRowSchema = z.object({
  id: z.number().int(),
  entity_type: z.string(),
  entity_id: z.string(),
  recorded_at: z.number().int(),
  why: z.enum(['lost', 'overwritten']),
  reason: z.string(),
  operation: z.enum(['create', 'update', 'delete']),
  data: z.string(),
  attributes: z.string().nullable(),
  updated_at: z.number().int(),
  claimed_at: z.number().int().nullable(),
  sync_id: z.string(),
  written_by: z.string().nullable(),
  decided_by: z.string().nullable(),
});
type HistoryRow = z.infer<typeof HistoryRowSchema>;

const NamesSchema = z.array(z.string());

/** The rows of a page (one more than `limit` tells whether there is more), newest first, as a history page. */
export function historyPage(rows: readonly unknown[], limit: number): HistoryPage {
  const checked = rowsOf(HistoryRowSchema, rows, 'history');
  const more = checked.length > limit;
  const kept = more ? checked.slice(0, limit) : checked;
  const last = kept[kept.length - 1];
  return { entries: kept.map(toWire), more, nextBefore: more && last !== undefined ? last.id : null };
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
  page(q: HistoryQuery): HistoryPage {
    const rows = this.stmts.page.all({
      home: q.homeId,
      type: q.entityType,
      id: q.entityId,
      before: q.before ?? Number.MAX_SAFE_INTEGER,
      limit: q.limit + 1,
    });
    return historyPage(rows, q.limit);
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
    data: DataSchema.parse(JSON.parse(r.data)),
    updated_at: formatTimestamp(r.updated_at),
    sync_id: r.sync_id,
    written_by: r.written_by,
    decided_by: r.decided_by,
  };
  if (r.attributes !== null) entry.attributes = NamesSchema.parse(JSON.parse(r.attributes));
  if (r.claimed_at !== null) entry.claimed_updated_at = formatTimestamp(r.claimed_at);
  return entry;
}

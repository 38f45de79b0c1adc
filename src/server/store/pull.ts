/**
 * Reading deltas (seed §2 Sync Delta; design.md §Watermark, §Pagination). A delta is the rows of one home with
 * W < seq <= H, ordered by priority then seq (seed §Batching "states > devices > rooms"), at most `limit` a page.
 * Rows are turned into wire JSON by string splicing: `data` is stored as a JSON object text, so it is never parsed
 * on the way out.
 */
import { ENTITY_TYPES, ENTITY_PRIORITY, formatTimestamp, type Micros } from '../../protocol/index.js';
import type { ServerDb } from '../db.js';

export interface PagePosition {
  readonly p: number;
  readonly s: Micros;
}

export interface PullQuery {
  readonly homeId: string;
  readonly clientId: string;
  /** last_sync as µs; null for a full sync. */
  readonly w: Micros | null;
  readonly h: Micros;
  /** Bit (1 << priority) set for each requested entity type. */
  readonly typesMask: number;
  readonly includeDeleted: boolean;
  readonly after: PagePosition | null;
  readonly limit: number;
}

export interface PullPage {
  /** Each change as wire JSON text. */
  readonly changes: string[];
  readonly more: boolean;
  readonly last: PagePosition | null;
}

/** An entities row as read for deltas and tools. */
export interface EntityRow {
  entity_type: string;
  entity_id: string;
  data: string;
  updated_at: number;
  sync_id: string;
  deleted: number;
  seq: number;
  created_seq: number;
  origin_client?: string | null;
}

export const ALL_TYPES_MASK = ENTITY_TYPES.reduce((mask, t) => mask | (1 << ENTITY_PRIORITY[t]), 0);
const MAX_PRIORITY = Math.max(...Object.values(ENTITY_PRIORITY));

let lastUs = -1;
let lastText = '';
/** formatTimestamp, remembering the last value (rows of one push share their timestamp). */
function formatCached(us: Micros): string {
  if (us !== lastUs) {
    lastText = formatTimestamp(us);
    lastUs = us;
  }
  return lastText;
}

/** One change of a sync_delta as JSON text; `data` also carries id, sync_id and updated_at (Python compatibility). */
export function changeJson(row: EntityRow, w: Micros | null): string {
  const op = row.deleted ? 'delete' : row.created_seq > (w ?? 0) ? 'create' : 'update';
  const ts = formatCached(row.updated_at);
  const id = JSON.stringify(row.entity_id);
  const syncId = JSON.stringify(row.sync_id);
  const head = `{"id":${id},"sync_id":${syncId},"updated_at":"${ts}"`;
  const data = row.data.length > 2 ? `${head},${row.data.slice(1)}` : `${head}}`;
  return (
    `{"entity_type":"${row.entity_type}","entity_id":${id},"operation":"${op}",` +
    `"data":${data},"updated_at":"${ts}","sync_id":${syncId}}`
  );
}

export class DeltaReader {
  private readonly byPriority;
  private readonly conflictsStmt;

  constructor(db: ServerDb) {
    this.byPriority = db.prepare(`
      SELECT entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq
      FROM entities
      WHERE home_id = @home AND priority = @p AND seq > @lo AND seq <= @h
        AND (@includeDeleted = 1 OR deleted = 0)
        AND (@exclude IS NULL OR origin_client IS NOT @exclude)
      ORDER BY seq
      LIMIT @limit`);
    this.conflictsStmt = db.prepare(
      'SELECT entry FROM conflicts WHERE client_id = ? AND seq > ? AND seq <= ? ORDER BY seq DESC LIMIT ?',
    );
  }

  /** Reads one page: priorities in order, resuming after `after`, fetching one extra row to know `more`. */
  page(q: PullQuery): PullPage {
    const rows: { row: EntityRow; p: number }[] = [];
    const start = q.after?.p ?? 0;
    for (let p = start; p <= MAX_PRIORITY && rows.length <= q.limit; p++) {
      if ((q.typesMask & (1 << p)) === 0) continue;
      const resume = q.after !== null && p === q.after.p ? q.after.s : 0;
      const batch = this.byPriority.all({
        home: q.homeId,
        p,
        lo: Math.max(q.w ?? 0, resume),
        h: q.h,
        includeDeleted: q.includeDeleted ? 1 : 0,
        exclude: q.w === null ? null : q.clientId, // a full sync includes the client's own writes
        limit: q.limit + 1 - rows.length,
      }) as EntityRow[];
      for (const row of batch) rows.push({ row, p });
    }
    const more = rows.length > q.limit;
    const kept = more ? rows.slice(0, q.limit) : rows;
    const lastKept = kept[kept.length - 1];
    return {
      changes: kept.map(({ row }) => changeJson(row, q.w)),
      more,
      last: lastKept === undefined ? null : { p: lastKept.p, s: lastKept.row.seq },
    };
  }

  /** Conflicts recorded against this client's pushes with seq in (w, h], newest `limit`, oldest first. */
  conflicts(clientId: string, w: Micros | null, h: Micros, limit: number): string[] {
    const rows = this.conflictsStmt.all(clientId, w ?? 0, h, limit) as { entry: string }[];
    return rows.map((r) => r.entry).reverse();
  }
}

/**
 * Reading deltas (seed §2 Sync Delta; docs/protocol.md §Watermark and delta, §Pagination). A delta is the rows of
 * one home with W < seq <= H, ordered by priority then seq (seed §Batching "states > devices > rooms"), at most `limit`
 * a page. Rows are turned into wire JSON by string splicing: `data` is stored as a JSON object text, so it is never
 * parsed on the way out.
 *
 * Extensions (docs/protocol.md): a client that announced `partial` gets, for an entity_state it already has, only
 * the attributes other clients changed since its watermark (`partial: true`, `removed_attributes`); a version the
 * clamp moved carries `claimed_updated_at`; a repair request (`buckets`) reads only the entities of those digest
 * buckets. A row whose latest write came from the requesting client is still sent to it when another client's
 * attribute in it is newer than its watermark (`foreign_seq`).
 */
import { z } from 'zod';
import { DataSchema, decodeAttrMeta, ENTITY_TYPES, ENTITY_PRIORITY, formatTimestamp, type Micros } from '../../protocol/index.js';

const StateObjectSchema = z.record(z.string(), z.unknown());
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
  /** Attribute-level extension: the client understands partial entity_state changes. */
  readonly partial?: boolean;
  /** Digest repair: only rows of these buckets. */
  readonly buckets?: readonly number[];
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
  attrs?: string | null;
  claimed_at?: number | null;
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
export function changeJson(row: EntityRow, w: Micros | null, extra = ''): string {
  const op = row.deleted ? 'delete' : row.created_seq > (w ?? 0) ? 'create' : 'update';
  const ts = formatCached(row.updated_at);
  const id = JSON.stringify(row.entity_id);
  const syncId = JSON.stringify(row.sync_id);
  const head = `{"id":${id},"sync_id":${syncId},"updated_at":"${ts}"`;
  const data = row.data.length > 2 ? `${head},${row.data.slice(1)}` : `${head}}`;
  const claimed = row.claimed_at === null || row.claimed_at === undefined ? '' : `,"claimed_updated_at":"${formatTimestamp(row.claimed_at)}"`;
  return (
    `{"entity_type":"${row.entity_type}","entity_id":${id},"operation":"${op}",` +
    `"data":${data},"updated_at":"${ts}","sync_id":${syncId}${claimed}${extra}}`
  );
}

/**
 * The partial form of an entity_state row for a client that understands it: the attributes changed since `w` by
 * other clients, and those removed. Undefined: send the row whole (nothing to leave out); null: nothing new for
 * this client (every newer attribute is its own).
 */
export function partialJson(row: EntityRow, w: Micros, clientId: string): string | undefined | null {
  if (row.deleted || row.attrs === null || row.attrs === undefined || row.created_seq > w) return undefined;
  const meta = decodeAttrMeta(row.attrs);
  const body = DataSchema.parse(JSON.parse(row.data)); // stored as a JSON object by the push
  const parsedState = StateObjectSchema.safeParse(body.state);
  const state = parsedState.success ? parsedState.data : {};
  const names = Object.keys(state);
  const changed: Record<string, unknown> = {};
  const removed: string[] = [];
  let kept = 0;
  for (const [name, v] of Object.entries(meta)) {
    if (v.q <= w || v.o === clientId) continue;
    if (Object.hasOwn(state, name)) {
      changed[name] = state[name];
      kept += 1;
    } else removed.push(name);
  }
  if (kept === names.length && removed.length === 0 && names.every((n) => Object.hasOwn(meta, n))) return undefined;
  if (kept === 0 && removed.length === 0) return null;
  const data = JSON.stringify({ ...body, state: changed });
  const partialRow = { ...row, data };
  return changeJson(partialRow, w, `,"partial":true${removed.length > 0 ? `,"removed_attributes":${JSON.stringify(removed)}` : ''}`);
}

export class DeltaReader {
  private readonly byPriority;
  private readonly conflictsStmt;

  constructor(db: ServerDb) {
    this.byPriority = db.prepare(`
      SELECT entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, attrs, claimed_at
      FROM entities
      WHERE home_id = @home AND priority = @p AND seq > @lo AND seq <= @h
        AND (@includeDeleted = 1 OR deleted = 0)
        AND (@exclude IS NULL OR origin_client IS NOT @exclude OR foreign_seq > @w)
        AND (@buckets IS NULL OR bucket IN (SELECT value FROM json_each(@buckets)))
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
        w: q.w ?? 0,
        buckets: q.buckets === undefined ? null : JSON.stringify(q.buckets),
        limit: q.limit + 1 - rows.length,
      }) as EntityRow[];
      for (const row of batch) rows.push({ row, p });
    }
    const more = rows.length > q.limit;
    const kept = more ? rows.slice(0, q.limit) : rows;
    const lastKept = kept[kept.length - 1];
    const changes: string[] = [];
    for (const { row } of kept) {
      const partial = q.partial === true && q.w !== null ? partialJson(row, q.w, q.clientId) : undefined;
      if (partial === null) continue; // only this client's own attributes are newer: nothing to send
      changes.push(partial ?? changeJson(row, q.w));
    }
    return {
      changes,
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

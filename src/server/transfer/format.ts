/**
 * The server's portable dump (`server export` / `server import`): JSON lines, one record each, the same for both
 * stores, so a server moves from SQLite to PostgreSQL (or back) with nothing lost — homes with their watermarks and
 * purge horizons, clients with their secrets and acks, tokens (only their hashes, as stored), entities with their
 * tombstones, per-attribute versions and clamped times, push results (idempotency), recorded conflicts, the sync
 * history, and meta (the cursor MAC key). The file holds client secrets: it is created with mode 0600 and never
 * overwritten.
 *
 * Not carried: what is derived. The digest columns of an entity (bucket, hash) and the per-home digest sums are
 * left unfilled by an import (bucket -1), and the importing store computes them when it next opens.
 *
 * Every line is checked with zod on the way in; the last line counts the records of each kind, so a truncated file
 * is refused instead of half-imported.
 *
 * Version 1 grew additively: the entity fields `attrs`, `foreign_seq`, `claimed_at`, the `history` records and
 * their count in the end line are optional, so a dump written before them still imports (as null / 0 / none).
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import { ApplyStatusSchema, DataSchema, ENTITY_TYPES } from '../../protocol/index.js';

export const DUMP_FORMAT = 'inbetweenies-server-dump';
export const DUMP_VERSION = 1;

const Int = z.number().int();
const Micro = Int.nonnegative();

/** JSON text whose value passes `schema` (kept as text: the stores keep it byte for byte). */
function jsonText(schema: z.ZodType, what: string): z.ZodString {
  return z.string().refine((text) => {
    try {
      return schema.safeParse(JSON.parse(text)).success;
    } catch {
      return false;
    }
  }, `not the JSON text of ${what}`);
}

export const HeaderLine = z.object({
  t: z.literal('header'),
  format: z.literal(DUMP_FORMAT),
  version: z.literal(DUMP_VERSION),
  source: z.enum(['sqlite', 'postgres']),
  exported_at: z.string(),
});
export const MetaLine = z.object({ t: z.literal('meta'), key: z.string(), value: z.string() });
/**
 * `watermark`: an upper bound of every seq written in the home and every server_time issued to it. The importing
 * store starts the home's clock there, so the home's clients keep their last_sync and new writes sort after it.
 */
export const HomeLine = z.object({
  t: z.literal('home'),
  home_id: z.string().min(1),
  created_at: Int,
  purged_through: Micro,
  watermark: Micro,
});
export const ClientLine = z.object({
  t: z.literal('client'),
  client_id: z.string().min(1),
  secret: z.string().min(1),
  home_id: z.string().min(1),
  created_at: Int,
  last_ack_watermark: Micro.nullable(),
  last_ack_at: Int.nullable(),
});
export const TokenLine = z.object({
  t: z.literal('token'),
  token_hash: z.string().min(1),
  kind: z.enum(['access', 'refresh']),
  client_id: z.string().min(1),
  expires_at: Int,
  family: z.string().nullable(),
});
export const EntityLine = z.object({
  t: z.literal('entity'),
  home_id: z.string().min(1),
  entity_type: z.enum(ENTITY_TYPES),
  entity_id: z.string().min(1),
  /** The stored JSON object text, byte for byte. */
  data: z.string(),
  updated_at: Int,
  sync_id: z.string(),
  deleted: z.boolean(),
  seq: Micro,
  created_seq: Micro,
  origin_client: z.string().nullable(),
  /** entity_state: the per-attribute versions, the stored JSON text (absent in older dumps: none, the entity's own). */
  attrs: z.string().nullable().default(null),
  /** The highest seq of an attribute written by another client than origin_client (absent in older dumps: 0). */
  foreign_seq: Micro.default(0),
  /** µs: the writer's claimed updated_at when the clamp moved it (absent in older dumps: not clamped). */
  claimed_at: Micro.nullable().default(null),
});
export const ResultLine = z.object({
  t: z.literal('result'),
  client_id: z.string().min(1),
  client_sync_id: z.string().min(1),
  status: ApplyStatusSchema,
  server_sync_id: z.string().nullable(),
  entity_type: z.string(),
  entity_id: z.string(),
  detail: z.string().nullable(),
  applications: Int.nonnegative(),
  recorded_at: Int,
});
export const ConflictLine = z.object({ t: z.literal('conflict'), client_id: z.string().min(1), seq: Micro, entry: z.string() });
/**
 * A sync history entry, every column. `id` is kept (the importing store continues after the highest), so the
 * entries keep their order — `before` paging and "newest first" — and even a `next_before` handed out stays valid.
 */
export const HistoryLine = z.object({
  t: z.literal('history'),
  id: Int.positive(),
  home_id: z.string().min(1),
  entity_type: z.enum(ENTITY_TYPES),
  entity_id: z.string().min(1),
  recorded_at: Int,
  why: z.enum(['lost', 'overwritten']),
  reason: z.string(),
  operation: z.enum(['create', 'update', 'delete']),
  data: jsonText(DataSchema, 'an object'),
  attributes: jsonText(z.array(z.string()), 'an array of names').nullable(),
  updated_at: Micro,
  claimed_at: Micro.nullable(),
  sync_id: z.string(),
  written_by: z.string().nullable(),
  decided_by: z.string().nullable(),
});

/** The history table's columns, in HistoryLine's order (both stores name them alike). */
export const HISTORY_COLUMNS =
  'id, home_id, entity_type, entity_id, recorded_at, why, reason, operation, data, attributes, updated_at, claimed_at, sync_id, written_by, decided_by';

export const RECORD_KINDS = ['meta', 'home', 'client', 'token', 'entity', 'result', 'conflict', 'history'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];
export type DumpCounts = Record<RecordKind, number>;

const Count = Int.nonnegative();
export const EndLine = z.object({
  t: z.literal('end'),
  counts: z.object({
    meta: Count,
    home: Count,
    client: Count,
    token: Count,
    entity: Count,
    result: Count,
    conflict: Count,
    /** Absent in dumps written before the history was carried: none. */
    history: Count.default(0),
  } satisfies Record<RecordKind, z.ZodType>),
});

/** The records as rows (without their tag): what each store's export reads. */
export const ROWS = {
  home: HomeLine.omit({ t: true }),
  client: ClientLine.omit({ t: true }),
  token: TokenLine.omit({ t: true }),
  entity: EntityLine.omit({ t: true }),
  result: ResultLine.omit({ t: true }),
  conflict: ConflictLine.omit({ t: true }),
  history: HistoryLine.omit({ t: true }),
  meta: MetaLine.omit({ t: true }),
} as const;

export const DumpRecord = z.discriminatedUnion('t', [MetaLine, HomeLine, ClientLine, TokenLine, EntityLine, ResultLine, ConflictLine, HistoryLine]);
export type DumpRecord = z.infer<typeof DumpRecord>;
export type HomeRecord = z.infer<typeof HomeLine>;
export type ClientRecordLine = z.infer<typeof ClientLine>;
export type TokenRecord = z.infer<typeof TokenLine>;
export type EntityRecord = z.infer<typeof EntityLine>;
export type ResultRecordLine = z.infer<typeof ResultLine>;
export type ConflictRecord = z.infer<typeof ConflictLine>;
export type HistoryRecordLine = z.infer<typeof HistoryLine>;

export function emptyCounts(): DumpCounts {
  return { meta: 0, home: 0, client: 0, token: 0, entity: 0, result: 0, conflict: 0, history: 0 };
}

/** Writes a dump: header, records in the order homes → clients → tokens → the rest, end line with the counts. */
export class DumpWriter {
  readonly counts = emptyCounts();
  private constructor(
    private readonly out: WriteStream,
    private readonly path: string,
  ) {}

  /** Creates `path` with mode 0600; refuses an existing file (a dump is never overwritten). */
  static async create(path: string, source: 'sqlite' | 'postgres'): Promise<DumpWriter> {
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    await Promise.race([once(out, 'open'), once(out, 'error').then(([err]) => Promise.reject(err as Error))]);
    const writer = new DumpWriter(out, path);
    await writer.line({ t: 'header', format: DUMP_FORMAT, version: DUMP_VERSION, source, exported_at: new Date().toISOString() });
    return writer;
  }

  async write(record: DumpRecord): Promise<void> {
    this.counts[record.t] += 1;
    await this.line(record);
  }

  /** Writes the end line, flushes and closes (fsync: an export someone deletes the source after must be on disk). */
  async finish(): Promise<DumpCounts> {
    await this.line({ t: 'end', counts: this.counts });
    await new Promise<void>((resolve, reject) => {
      this.out.end((err?: Error | null) => (err ? reject(err) : resolve()));
    });
    const handle = await open(this.path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { ...this.counts };
  }

  private async line(value: unknown): Promise<void> {
    if (!this.out.write(`${JSON.stringify(value)}\n`)) await once(this.out, 'drain');
  }
}

/**
 * Reads a dump and hands each record, checked, to `onRecord` in file order; refuses a wrong header, a bad line
 * (with its number), history ids out of order, a missing end line or counts that do not match.
 */
export async function readDump(path: string, onRecord: (record: DumpRecord) => Promise<void>): Promise<{ source: 'sqlite' | 'postgres'; counts: DumpCounts }> {
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  const counts = emptyCounts();
  let source: 'sqlite' | 'postgres' | undefined;
  let ended = false;
  let n = 0;
  let lastHistoryId = 0;
  for await (const text of lines) {
    n += 1;
    if (ended) throw new GatewayError('BAD_REQUEST', `dump line ${n}: data after the end line`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new GatewayError('BAD_REQUEST', `dump line ${n}: not JSON`);
    }
    if (n === 1) {
      const header = HeaderLine.safeParse(value);
      if (!header.success) throw new GatewayError('BAD_REQUEST', `dump line 1: not a ${DUMP_FORMAT} version ${DUMP_VERSION} header`);
      source = header.data.source;
      continue;
    }
    const end = EndLine.safeParse(value);
    if (end.success) {
      for (const kind of RECORD_KINDS) {
        if (end.data.counts[kind] !== counts[kind]) {
          throw new GatewayError('BAD_REQUEST', `dump: the end line counts ${end.data.counts[kind]} ${kind} records, the file holds ${counts[kind]}`);
        }
      }
      ended = true;
      continue;
    }
    const record = DumpRecord.safeParse(value);
    if (!record.success) {
      const issue = record.error.issues[0];
      throw new GatewayError('BAD_REQUEST', `dump line ${n}: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid record'}`);
    }
    if (record.data.t === 'history') {
      // Ids are kept (HistoryLine): in increasing order they cannot collide, and the order they give is the file's.
      if (record.data.id <= lastHistoryId) throw new GatewayError('BAD_REQUEST', `dump line ${n}: history id ${record.data.id} not above the previous ${lastHistoryId}`);
      lastHistoryId = record.data.id;
    }
    counts[record.data.t] += 1;
    await onRecord(record.data);
  }
  if (source === undefined) throw new GatewayError('BAD_REQUEST', 'dump: empty file');
  if (!ended) throw new GatewayError('BAD_REQUEST', 'dump: no end line (truncated file?)');
  return { source, counts };
}

/**
 * Applying a sync_push (seed §3, §4, §Conflict Resolution; design.md §Conflicts, §Idempotency).
 *
 * The whole push runs in ONE transaction (synchronous=FULL), so the 200 means all of it is durable. Each change is
 * decided on its own: a change the server cannot accept is "rejected" with a code and the rest of the batch applies
 * (docs/protocol.md §Per-change rejection). A client_sync_id the client already pushed returns the stored result and
 * changes nothing.
 */
import {
  DATA_SCHEMAS,
  ENTITY_PRIORITY,
  classifyConflict,
  formatTimestamp,
  normaliseEntityType,
  parseTimestamp,
  resolveLastWriteWins,
  splitEnvelopeFields,
  type EntityType,
  type Micros,
  type Operation,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
  type WireVersion,
} from '../../protocol/index.js';
import type { ServerDb } from '../db.js';
import type { Sequencer } from './sequencer.js';

export interface PushContext {
  readonly homeId: string;
  readonly clientId: string;
}

export interface PushOutcome {
  readonly applied: WireApplied;
  readonly conflict?: WireConflict;
}

export interface PushResult {
  readonly applied: WireApplied[];
  readonly conflicts: WireConflict[];
  readonly serverTime: Micros;
}

interface StoredRow {
  data: string;
  updated_at: number;
  sync_id: string;
  deleted: number;
  created_seq: number;
  origin_client: string | null;
}

/** A pushed change that passed validation, in domain terms. */
interface Candidate {
  readonly type: EntityType;
  readonly entityId: string;
  readonly op: Operation;
  readonly body: Record<string, unknown>;
  readonly updatedAt: Micros;
  readonly syncId: string;
  readonly deleted: boolean;
  readonly clientSyncId: string;
  /** JSON text of `body`, as stored. */
  readonly bodyText: string;
}

const MAX_ERROR_MESSAGE = 1000;

function rejected(change: WirePushChange, code: string, message: string): PushOutcome {
  return {
    applied: {
      client_sync_id: change.client_sync_id,
      server_sync_id: null,
      status: 'rejected',
      entity_type: change.entity_type,
      entity_id: change.entity_id,
      error: { code, message: message.slice(0, MAX_ERROR_MESSAGE) },
    },
  };
}

/** Validates one change; returns the candidate or the per-change rejection. */
export function validateChange(change: WirePushChange, ctx: PushContext): Candidate | PushOutcome {
  const type = normaliseEntityType(change.entity_type);
  if (type === undefined) {
    return rejected(change, 'UNKNOWN_ENTITY_TYPE', `unknown entity type ${JSON.stringify(change.entity_type)}`);
  }
  const split = splitData(change.data ?? {});
  if (!split.ok) return rejected(change, 'INVALID_ENTITY', split.problems.join('; '));
  const { body, id, syncId, updatedAt } = split.value;
  if (id !== undefined && id !== change.entity_id) {
    return rejected(change, 'INVALID_ENTITY', `data.id ${JSON.stringify(id)} differs from entity_id`);
  }
  const stamp = change.updated_at ?? updatedAt;
  const updatedAtUs = stamp === undefined ? undefined : parseTimestamp(stamp);
  if (updatedAtUs === undefined) {
    return rejected(change, 'INVALID_ENTITY', 'updated_at is required (on the change or inside data)');
  }
  if (change.operation !== 'delete') {
    const parsed = DATA_SCHEMAS[type].safeParse(body);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `data.${i.path.map(String).join('.')}: ${i.message}`);
      return rejected(change, 'INVALID_ENTITY', problems.join('; '));
    }
  }
  if (body.home_id !== undefined && body.home_id !== ctx.homeId) {
    return rejected(change, 'FORBIDDEN', 'data.home_id names another home than the client belongs to');
  }
  let bodyText: string;
  try {
    bodyText = JSON.stringify(body);
  } catch {
    // JSON.parse accepts nesting that JSON.stringify cannot re-serialise (stack overflow): refuse, never a 500.
    return rejected(change, 'INVALID_ENTITY', 'data is nested too deeply');
  }
  return {
    type,
    entityId: change.entity_id,
    op: change.operation,
    body,
    updatedAt: updatedAtUs,
    syncId: change.sync_id ?? syncId ?? change.client_sync_id,
    deleted: change.operation === 'delete',
    clientSyncId: change.client_sync_id,
    bodyText,
  };
}

/** splitEnvelopeFields, skipped when no envelope field is present (the common case on the hot path). */
function splitData(data: Record<string, unknown>): ReturnType<typeof splitEnvelopeFields> {
  if (data.id === undefined && data.sync_id === undefined && data.updated_at === undefined) {
    return { ok: true, value: { body: data, id: undefined, syncId: undefined, updatedAt: undefined } };
  }
  return splitEnvelopeFields(data);
}

function storedVersion(row: StoredRow, entityId: string): WireVersion {
  const ts = formatTimestamp(row.updated_at);
  const data = { id: entityId, sync_id: row.sync_id, updated_at: ts, ...(JSON.parse(row.data) as Record<string, unknown>) };
  return { operation: row.deleted ? 'delete' : 'update', data, updated_at: ts, sync_id: row.sync_id, deleted: row.deleted === 1 };
}

function candidateVersion(c: Candidate): WireVersion {
  const ts = formatTimestamp(c.updatedAt);
  return {
    operation: c.op,
    data: { id: c.entityId, sync_id: c.syncId, updated_at: ts, ...c.body },
    updated_at: ts,
    sync_id: c.syncId,
    deleted: c.deleted,
  };
}

export class PushApplier {
  private readonly db: ServerDb;
  private readonly seq: Sequencer;
  private readonly stmts;

  constructor(options: { db: ServerDb; sequencer: Sequencer; clock: () => number }) {
    this.db = options.db;
    this.seq = options.sequencer;
    const db = this.db;
    const clock = options.clock;
    this.stmts = {
      getResult: db.prepare('SELECT result FROM push_results WHERE client_id = ? AND client_sync_id = ?').pluck(),
      putResult: db.prepare(`
        INSERT INTO push_results (client_id, client_sync_id, result, applications, recorded_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(client_id, client_sync_id) DO UPDATE SET
          result = excluded.result, applications = applications + excluded.applications`),
      getEntity: db.prepare(`
        SELECT data, updated_at, sync_id, deleted, created_seq, origin_client
        FROM entities WHERE home_id = ? AND entity_type = ? AND entity_id = ?`),
      putEntity: db.prepare(`
        INSERT INTO entities
          (home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, origin_client)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(home_id, entity_type, entity_id) DO UPDATE SET
          data = excluded.data, updated_at = excluded.updated_at, sync_id = excluded.sync_id,
          deleted = excluded.deleted, seq = excluded.seq, created_seq = excluded.created_seq,
          origin_client = excluded.origin_client`),
      putConflict: db.prepare('INSERT INTO conflicts (client_id, seq, entry) VALUES (?, ?, ?)'),
    };
    this.now = clock;
  }

  private readonly now: () => number;

  /** Applies a whole push in one transaction. */
  apply(ctx: PushContext, changes: readonly WirePushChange[]): PushResult {
    return this.db.transaction(() => {
      const applied: WireApplied[] = [];
      const conflicts: WireConflict[] = [];
      const recordedAt = this.now();
      for (const change of changes) {
        const prior = this.stmts.getResult.get(ctx.clientId, change.client_sync_id) as string | undefined;
        if (prior !== undefined) {
          const outcome = JSON.parse(prior) as PushOutcome; // written by this class below
          applied.push(outcome.applied);
          if (outcome.conflict) conflicts.push(outcome.conflict);
          continue;
        }
        const { outcome, wrote } = this.applyOne(ctx, change);
        this.stmts.putResult.run(ctx.clientId, change.client_sync_id, JSON.stringify(outcome), wrote ? 1 : 0, recordedAt);
        applied.push(outcome.applied);
        if (outcome.conflict) conflicts.push(outcome.conflict);
      }
      this.seq.persistInTx();
      return { applied, conflicts, serverTime: this.seq.current() };
    })();
  }

  private applyOne(ctx: PushContext, change: WirePushChange): { outcome: PushOutcome; wrote: boolean } {
    const candidate = validateChange(change, ctx);
    if (!('type' in candidate)) return { outcome: candidate, wrote: false };
    const c = candidate;
    const stored = this.stmts.getEntity.get(ctx.homeId, c.type, c.entityId) as StoredRow | undefined;
    if (stored === undefined) {
      this.write(ctx, c, undefined);
      return { outcome: { applied: this.appliedEntry(c, 'applied', c.syncId) }, wrote: true };
    }
    if (
      stored.sync_id === c.syncId &&
      stored.updated_at === c.updatedAt &&
      (stored.deleted === 1) === c.deleted &&
      (c.deleted || stored.data === c.bodyText)
    ) {
      // Identical resubmission of the stored version: applied, nothing written, no new seq.
      return { outcome: { applied: this.appliedEntry(c, 'applied', stored.sync_id) }, wrote: false };
    }
    const decision = resolveLastWriteWins(
      { updatedAt: stored.updated_at, syncId: stored.sync_id, deleted: stored.deleted === 1 },
      { updatedAt: c.updatedAt, syncId: c.syncId, deleted: c.deleted },
    );
    const clientWins = decision.winner === 'client';
    const reportable = !clientWins || stored.origin_client !== ctx.clientId;
    const conflict: WireConflict | undefined = reportable
      ? {
          entity_type: c.type,
          entity_id: c.entityId,
          type: classifyConflict({ deleted: stored.deleted === 1 }, { deleted: c.deleted, operation: c.op }),
          reason: decision.reason,
          server_version: storedVersion(stored, c.entityId),
          client_version: candidateVersion(c),
          resolution: clientWins ? 'client_wins' : 'server_wins',
          client_sync_id: c.clientSyncId,
        }
      : undefined;
    const seq = clientWins ? this.write(ctx, c, stored) : this.seq.next();
    if (conflict) this.stmts.putConflict.run(ctx.clientId, seq, JSON.stringify(conflict));
    const applied = clientWins
      ? this.appliedEntry(c, 'applied', c.syncId)
      : this.appliedEntry(c, 'conflict', stored.sync_id);
    return { outcome: conflict ? { applied, conflict } : { applied }, wrote: clientWins };
  }

  /** Writes the candidate as the entity's current version; returns its seq. */
  private write(ctx: PushContext, c: Candidate, stored: StoredRow | undefined): Micros {
    const seq = this.seq.next();
    const createdSeq = stored !== undefined && stored.deleted === 0 ? stored.created_seq : seq;
    const keepData = c.deleted && stored !== undefined && Object.keys(c.body).length === 0;
    this.stmts.putEntity.run(
      ctx.homeId,
      c.type,
      c.entityId,
      keepData ? stored.data : c.bodyText,
      c.updatedAt,
      c.syncId,
      c.deleted ? 1 : 0,
      seq,
      createdSeq,
      ENTITY_PRIORITY[c.type],
      ctx.clientId,
    );
    return seq;
  }

  private appliedEntry(c: Candidate, status: 'applied' | 'conflict', serverSyncId: string): WireApplied {
    return {
      client_sync_id: c.clientSyncId,
      server_sync_id: serverSyncId,
      status,
      entity_type: c.type,
      entity_id: c.entityId,
    };
  }

  /** How many times the change `clientSyncId` of `clientId` was written (0 when never seen). */
  applicationCount(clientId: string, clientSyncId: string): number {
    const row = this.db
      .prepare('SELECT applications FROM push_results WHERE client_id = ? AND client_sync_id = ?')
      .pluck()
      .get(clientId, clientSyncId) as number | undefined;
    return row ?? 0;
  }
}

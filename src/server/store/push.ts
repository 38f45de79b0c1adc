/**
 * Applying a sync_push (seed §3, §4, §Conflict Resolution; design.md §Conflicts, §Idempotency).
 *
 * The whole push runs in ONE transaction (synchronous=FULL), so the 200 means all of it is durable. Each change is
 * decided on its own: a change the server cannot accept is "rejected" with a code and the rest of the batch applies
 * (docs/protocol.md §Per-change rejection). A client_sync_id the client already pushed returns the stored result and
 * changes nothing. Stored results and stored versions are read in one query each per push (json_each), not one
 * query per change.
 */
import {
  ENTITY_PRIORITY,
  classifyConflict,
  formatTimestamp,
  normaliseEntityType,
  resolveLastWriteWins,
  type ApplyStatus,
  type Micros,
  type WireApplied,
  type WireConflict,
  type WirePushChange,
  type WireVersion,
} from '../../protocol/index.js';
import type { ServerDb } from '../db.js';
import type { Sequencer } from './sequencer.js';
import { isAddressable, validateChange, type Candidate, type PushContext, type PushOutcome } from './validate.js';

export type { PushContext, PushOutcome } from './validate.js';

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

interface ResultRow {
  client_sync_id: string;
  status: string;
  server_sync_id: string | null;
  entity_type: string;
  entity_id: string;
  detail: string | null;
}

interface Detail {
  error?: { code: string; message: string };
  conflict?: WireConflict;
}

function entityKey(type: string, id: string): string {
  return `${type}\u0000${id}`;
}

function toOutcome(row: ResultRow): PushOutcome {
  const detail: Detail = row.detail === null ? {} : (JSON.parse(row.detail) as Detail); // written by this class
  const applied: WireApplied = {
    client_sync_id: row.client_sync_id,
    server_sync_id: row.server_sync_id,
    status: row.status as ApplyStatus,
    entity_type: row.entity_type,
    entity_id: row.entity_id,
  };
  if (detail.error) applied.error = detail.error;
  return detail.conflict ? { applied, conflict: detail.conflict } : { applied };
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

function appliedEntry(c: Candidate, status: 'applied' | 'conflict', serverSyncId: string): WireApplied {
  return { client_sync_id: c.clientSyncId, server_sync_id: serverSyncId, status, entity_type: c.type, entity_id: c.entityId };
}

/** Per-push working state: what the push has already decided and the current version of each touched entity. */
interface PushState {
  readonly ctx: PushContext;
  readonly results: Map<string, PushOutcome>;
  readonly entities: Map<string, StoredRow>;
  readonly recordedAt: number;
}

export class PushApplier {
  private readonly db: ServerDb;
  private readonly seq: Sequencer;
  private readonly clock: () => number;
  private readonly stmts;

  constructor(options: { db: ServerDb; sequencer: Sequencer; clock: () => number }) {
    this.db = options.db;
    this.seq = options.sequencer;
    this.clock = options.clock;
    const db = this.db;
    this.stmts = {
      priorResults: db.prepare(`
        SELECT client_sync_id, status, server_sync_id, entity_type, entity_id, detail FROM push_results
        WHERE client_id = ? AND client_sync_id IN (SELECT value FROM json_each(?))`),
      putResult: db.prepare(`
        INSERT INTO push_results
          (client_id, client_sync_id, status, server_sync_id, entity_type, entity_id, detail, applications, recorded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(client_id, client_sync_id) DO UPDATE SET applications = applications + excluded.applications`),
      // CROSS JOIN keeps json_each as the outer loop: one primary-key lookup per pushed key.
      storedVersions: db.prepare(`
        SELECT e.entity_type, e.entity_id, e.data, e.updated_at, e.sync_id, e.deleted, e.created_seq, e.origin_client
        FROM json_each(@keys) AS j CROSS JOIN entities AS e
        ON e.home_id = @home AND e.entity_type = j.value ->> 0 AND e.entity_id = j.value ->> 1`),
      putEntity: db.prepare(`
        INSERT INTO entities
          (home_id, entity_type, entity_id, data, updated_at, sync_id, deleted, seq, created_seq, priority, origin_client)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(home_id, entity_type, entity_id) DO UPDATE SET
          data = excluded.data, updated_at = excluded.updated_at, sync_id = excluded.sync_id,
          deleted = excluded.deleted, seq = excluded.seq, created_seq = excluded.created_seq,
          origin_client = excluded.origin_client`),
      putConflict: db.prepare('INSERT INTO conflicts (client_id, seq, entry) VALUES (?, ?, ?)'),
      applications: db
        .prepare('SELECT applications FROM push_results WHERE client_id = ? AND client_sync_id = ?')
        .pluck(),
    };
  }

  /** Applies a whole push in one transaction. */
  apply(ctx: PushContext, changes: readonly WirePushChange[]): PushResult {
    return this.db.transaction(() => {
      const state: PushState = {
        ctx,
        results: this.loadResults(ctx.clientId, changes),
        entities: this.loadEntities(ctx.homeId, changes),
        recordedAt: this.clock(),
      };
      const applied: WireApplied[] = [];
      const conflicts: WireConflict[] = [];
      for (const change of changes) {
        let outcome = state.results.get(change.client_sync_id);
        if (outcome === undefined) {
          outcome = this.applyNew(state, change);
          state.results.set(change.client_sync_id, outcome); // a repeat inside this push gets the same result
        }
        applied.push(outcome.applied);
        if (outcome.conflict) conflicts.push(outcome.conflict);
      }
      this.seq.persistInTx();
      return { applied, conflicts, serverTime: this.seq.current() };
    })();
  }

  private loadResults(clientId: string, changes: readonly WirePushChange[]): Map<string, PushOutcome> {
    const ids = JSON.stringify(changes.filter(isAddressable).map((c) => c.client_sync_id));
    const rows = this.stmts.priorResults.all(clientId, ids) as ResultRow[];
    return new Map(rows.map((r) => [r.client_sync_id, toOutcome(r)]));
  }

  private loadEntities(homeId: string, changes: readonly WirePushChange[]): Map<string, StoredRow> {
    const keys: [string, string][] = [];
    for (const c of changes) {
      const type = normaliseEntityType(c.entity_type);
      if (type !== undefined && isAddressable(c)) keys.push([type, c.entity_id]);
    }
    const rows = this.stmts.storedVersions.all({ home: homeId, keys: JSON.stringify(keys) }) as (StoredRow & {
      entity_type: string;
      entity_id: string;
    })[];
    return new Map(rows.map((r) => [entityKey(r.entity_type, r.entity_id), r]));
  }

  private applyNew(state: PushState, change: WirePushChange): PushOutcome {
    const candidate = validateChange(change, state.ctx);
    const { outcome, wrote } = 'type' in candidate ? this.decide(state, candidate) : { outcome: candidate, wrote: false };
    const a = outcome.applied;
    if (!isAddressable(change)) return outcome; // rejected, and cannot be stored as text (validate.ts)
    const detail: Detail | null = a.error || outcome.conflict ? { error: a.error, conflict: outcome.conflict } : null;
    this.stmts.putResult.run(
      state.ctx.clientId,
      a.client_sync_id,
      a.status,
      a.server_sync_id,
      a.entity_type,
      a.entity_id,
      detail === null ? null : JSON.stringify(detail),
      wrote ? 1 : 0,
      state.recordedAt,
    );
    return outcome;
  }

  /** Last-write-wins against the stored version (seed §Conflict Resolution). */
  private decide(state: PushState, c: Candidate): { outcome: PushOutcome; wrote: boolean } {
    const { ctx } = state;
    const stored = state.entities.get(entityKey(c.type, c.entityId));
    if (stored === undefined) {
      this.write(state, c, undefined);
      return { outcome: { applied: appliedEntry(c, 'applied', c.syncId) }, wrote: true };
    }
    if (
      stored.sync_id === c.syncId &&
      stored.updated_at === c.updatedAt &&
      (stored.deleted === 1) === c.deleted &&
      (c.deleted || stored.data === c.bodyText)
    ) {
      // Identical resubmission of the stored version: applied, nothing written, no new seq.
      return { outcome: { applied: appliedEntry(c, 'applied', stored.sync_id) }, wrote: false };
    }
    const decision = resolveLastWriteWins(
      { updatedAt: stored.updated_at, syncId: stored.sync_id, deleted: stored.deleted === 1 },
      { updatedAt: c.updatedAt, syncId: c.syncId, deleted: c.deleted },
    );
    const clientWins = decision.winner === 'client';
    const conflict: WireConflict | undefined =
      !clientWins || stored.origin_client !== ctx.clientId
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
    const seq = clientWins ? this.write(state, c, stored) : this.seq.next();
    if (conflict) this.stmts.putConflict.run(ctx.clientId, seq, JSON.stringify(conflict));
    const applied = clientWins ? appliedEntry(c, 'applied', c.syncId) : appliedEntry(c, 'conflict', stored.sync_id);
    return { outcome: conflict ? { applied, conflict } : { applied }, wrote: clientWins };
  }

  /** Writes the candidate as the entity's current version; returns its seq. */
  private write(state: PushState, c: Candidate, stored: StoredRow | undefined): Micros {
    const seq = this.seq.next();
    const createdSeq = stored !== undefined && stored.deleted === 0 ? stored.created_seq : seq;
    const keepData = c.deleted && stored !== undefined && Object.keys(c.body).length === 0;
    const row: StoredRow = {
      data: keepData ? stored.data : c.bodyText,
      updated_at: c.updatedAt,
      sync_id: c.syncId,
      deleted: c.deleted ? 1 : 0,
      created_seq: createdSeq,
      origin_client: state.ctx.clientId,
    };
    this.stmts.putEntity.run(
      state.ctx.homeId,
      c.type,
      c.entityId,
      row.data,
      row.updated_at,
      row.sync_id,
      row.deleted,
      seq,
      row.created_seq,
      ENTITY_PRIORITY[c.type],
      row.origin_client,
    );
    state.entities.set(entityKey(c.type, c.entityId), row);
    return seq;
  }

  /** How many times the change `clientSyncId` of `clientId` was written (0 when never seen). */
  applicationCount(clientId: string, clientSyncId: string): number {
    return (this.stmts.applications.get(clientId, clientSyncId) as number | undefined) ?? 0;
  }
}

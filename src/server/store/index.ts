/**
 * The server's persistent state behind one facade: accounts (homes, clients, tokens, acks), the commit sequencer,
 * delta reads, push application and tombstone purge. Everything is synchronous (better-sqlite3).
 */
import { randomBytes } from 'node:crypto';
import type { Micros } from '../../protocol/index.js';
import type { StoredEntity } from './contract.js';
import { openServerDb, type ServerDb } from '../db.js';
import { AccountStore } from './accounts.js';
import { DigestStore } from './digests.js';
import { HistoryStore } from './history.js';
import { DeltaReader, type EntityRow } from './pull.js';
import { PushApplier } from './push.js';
import { Sequencer } from './sequencer.js';
import { IssuedWatermarks } from './watermarks.js';

export { AccountStore, DeltaReader, DigestStore, HistoryStore, IssuedWatermarks, PushApplier, Sequencer };
export type { HistoryQuery, HistoryRecord } from './history.js';
export type { HomeDigest } from './contract.js';
export { hashToken } from './accounts.js';
export type { ClientCredentials, ClientRecord, IssuedTokens, TokenLookup } from './accounts.js';
export type { PullPage, PullQuery, PagePosition } from './pull.js';
export type { PushContext, PushResult } from './push.js';

/** An entity as the server holds it, for tests and tools. */
export type EntityView = StoredEntity;

export class ServerStore {
  readonly db: ServerDb;
  readonly accounts: AccountStore;
  readonly sequencer: Sequencer;
  /** What was issued to each home: the bound for every watermark a client presents. */
  readonly watermarks: IssuedWatermarks;
  readonly delta: DeltaReader;
  readonly push: PushApplier;
  /** Sync history (extension): losing and overwritten versions. */
  readonly history: HistoryStore;
  /** Convergence digest (extension): per-home bucket sums, maintained by every push. */
  readonly digests: DigestStore;
  /** Keys cursor MACs; random per database. */
  readonly cursorKey: string;
  private readonly clock: () => number;
  private readonly stmts;

  constructor(options: { dataDir: string; clock: () => number }) {
    this.clock = options.clock;
    this.db = openServerDb(options.dataDir);
    const db = this.db;
    this.accounts = new AccountStore({ db, clock: this.clock });
    this.watermarks = new IssuedWatermarks({ db });
    this.sequencer = new Sequencer({
      db,
      clock: this.clock,
      startSlackUs: this.watermarks.startSlackUs,
      minFloor: this.watermarks.startFloor(),
    });
    this.delta = new DeltaReader(db);
    this.history = new HistoryStore(db);
    this.digests = new DigestStore(db);
    this.push = new PushApplier({ db, sequencer: this.sequencer, clock: this.clock, history: this.history, digests: this.digests });
    db.prepare("INSERT INTO meta (key, value) VALUES ('cursor_key', ?) ON CONFLICT(key) DO NOTHING").run(
      randomBytes(32).toString('base64url'),
    );
    this.cursorKey = db.prepare("SELECT value FROM meta WHERE key = 'cursor_key'").pluck().get() as string;
    this.stmts = {
      purgedThrough: db.prepare('SELECT purged_through FROM homes WHERE home_id = ?').pluck(),
      homes: db.prepare('SELECT home_id FROM homes').pluck(),
      minAck: db.prepare('SELECT min(coalesce(last_ack_watermark, 0)) FROM clients WHERE home_id = ?').pluck(),
      maxTombstone: db
        .prepare('SELECT max(seq) FROM entities WHERE home_id = ? AND deleted = 1 AND seq <= ?')
        .pluck(),
      deleteTombstones: db.prepare('DELETE FROM entities WHERE home_id = ? AND deleted = 1 AND seq <= ?'),
      setPurged: db.prepare('UPDATE homes SET purged_through = max(purged_through, ?) WHERE home_id = ?'),
      entities: db.prepare('SELECT * FROM entities WHERE home_id = ? ORDER BY priority, seq'),
      oldResults: db.prepare('DELETE FROM push_results WHERE recorded_at < ?'),
      oldConflicts: db.prepare('DELETE FROM conflicts WHERE seq < ?'),
    };
  }

  /** Issues a sync watermark H to a client of `homeId` (first page of a sync_request). */
  issueWatermark(homeId: string): Micros {
    const h = this.sequencer.issue();
    this.watermarks.record(homeId, h);
    return h;
  }

  /** The server_time of a sync_result or sync_ack_result for a client of `homeId`: the current floor, as issued. */
  serverTimeFor(homeId: string): Micros {
    const floor = this.sequencer.current();
    this.watermarks.record(homeId, floor);
    return floor;
  }

  purgedThrough(homeId: string): Micros {
    return (this.stmts.purgedThrough.get(homeId) as number | undefined) ?? 0;
  }

  /**
   * Deletes tombstones every client of their home has acknowledged past, or older than `retentionSeconds`
   * (docs/protocol.md §Tombstones); records per home the highest purged seq. Returns how many were deleted.
   */
  purgeTombstones(retentionSeconds: number): number {
    const horizon = this.sequencer.nowMicros() - retentionSeconds * 1_000_000;
    return this.db.transaction(() => {
      let purged = 0;
      for (const homeId of this.stmts.homes.all() as string[]) {
        const minAck = (this.stmts.minAck.get(homeId) as number | null) ?? 0;
        const cutoff = Math.max(minAck, horizon);
        const top = this.stmts.maxTombstone.get(homeId, cutoff) as number | null;
        if (top === null) continue;
        purged += this.stmts.deleteTombstones.run(homeId, cutoff).changes;
        this.stmts.setPurged.run(top, homeId);
      }
      return purged;
    })();
  }

  /**
   * Forgets push results and recorded conflicts older than `retentionSeconds` (the tombstone retention): a retry
   * older than that is decided by last-write-wins again, which is safe (an identical version is a no-op).
   */
  purgeHistory(retentionSeconds: number): { results: number; conflicts: number } {
    const cutoffMs = this.clock() - retentionSeconds * 1000;
    return this.db.transaction(() => ({
      results: this.stmts.oldResults.run(cutoffMs).changes,
      conflicts: this.stmts.oldConflicts.run(cutoffMs * 1000).changes,
    }))();
  }

  /** Every entity of a home (tombstones included), in delta order. */
  entities(homeId: string): EntityView[] {
    return (this.stmts.entities.all(homeId) as EntityRow[]).map((r) => ({
      entity_type: r.entity_type,
      entity_id: r.entity_id,
      data: JSON.parse(r.data) as Record<string, unknown>,
      updated_at: r.updated_at,
      sync_id: r.sync_id,
      deleted: r.deleted === 1,
      seq: r.seq,
      origin_client: r.origin_client ?? null,
    }));
  }

  /**
   * Writes the exact floor and issued watermarks and marks them exact, so the next start adds no slack. Only the
   * server that issued them may call it, as it stops (a tool such as `server add-client` opening the same file while
   * the server runs must not: its mark would hide the server's unpersisted watermarks after a crash).
   */
  flushWatermarks(): void {
    if (!this.db.open) return;
    this.sequencer.flush();
    this.watermarks.flush();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

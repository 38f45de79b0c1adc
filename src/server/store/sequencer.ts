/**
 * The commit sequence and watermark (design.md §Watermark: "the server orders changes by its own commit order").
 *
 * Every committed write gets `seq = max(now, floor + 1)`, where `floor` is the highest of every seq written and
 * every watermark ever issued. A sync's watermark H = max(floor, now) is recorded as issued, so anything committed
 * afterwards gets seq > H and the next sync (last_sync = H) picks it up: a change committed while a paged sync runs
 * is never missed. Values are epoch microseconds so `server_time` is a real timestamp.
 *
 * The floor lives in memory; it is seeded at start from max(seq) and the persisted `meta.floor`, which write
 * transactions update, and which an issued watermark updates when it runs more than PERSIST_SLACK_US ahead of the
 * persisted value (well inside the 5 s tolerance that INVALID_SYNC_STATE allows after a restart).
 */
import type { Micros } from '../../protocol/index.js';
import { relaxedWrite, type ServerDb } from '../db.js';

export const PERSIST_SLACK_US: Micros = 1_000_000;

export class Sequencer {
  private floor: Micros;
  private persisted: Micros;
  private readonly clock: () => number;
  private readonly writeMeta: (value: string) => void;
  private readonly writeMetaRelaxed: (value: string) => void;

  constructor(options: { db: ServerDb; clock: () => number }) {
    const { db } = options;
    this.clock = options.clock;
    const maxSeq = (db.prepare('SELECT max(seq) AS m FROM entities').get() as { m: number | null }).m ?? 0;
    const maxConflict = (db.prepare('SELECT max(seq) AS m FROM conflicts').get() as { m: number | null }).m ?? 0;
    const metaRow = db.prepare("SELECT value FROM meta WHERE key = 'floor'").get() as { value: string } | undefined;
    const meta = metaRow === undefined ? 0 : Number(metaRow.value) || 0;
    this.persisted = meta;
    this.floor = Math.max(maxSeq, maxConflict, meta);
    const stmt = db.prepare("INSERT INTO meta (key, value) VALUES ('floor', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    this.writeMeta = (value) => {
      stmt.run(value);
    };
    this.writeMetaRelaxed = (value) => relaxedWrite(db, () => stmt.run(value));
  }

  nowMicros(): Micros {
    return Math.floor(this.clock() * 1000);
  }

  /** The current floor: no seq and no issued watermark is above it. */
  current(): Micros {
    return this.floor;
  }

  /** A fresh commit sequence number; call inside the write transaction that uses it, then `persistInTx()`. */
  next(): Micros {
    const seq = Math.max(this.nowMicros(), this.floor + 1);
    this.floor = seq;
    return seq;
  }

  /** Issues a sync watermark H (first page of a sync_request). */
  issue(): Micros {
    const h = Math.max(this.floor, this.nowMicros());
    this.floor = h;
    if (h > this.persisted + PERSIST_SLACK_US) {
      this.writeMetaRelaxed(String(h));
      this.persisted = h;
    }
    return h;
  }

  /**
   * Raises the floor to a watermark a client presents (a cursor's H or a last_sync within the restart tolerance),
   * so every later write gets a higher seq even if that watermark was issued but not persisted before a restart.
   */
  observe(watermark: Micros): void {
    if (watermark > this.floor) this.floor = watermark;
  }

  /** Records the floor inside a write transaction that already runs (no extra fsync). */
  persistInTx(): void {
    if (this.floor > this.persisted) {
      this.writeMeta(String(this.floor));
      this.persisted = this.floor;
    }
  }
}

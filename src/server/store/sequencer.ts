/**
 * The commit sequence (docs/protocol.md §Watermark and delta: the server orders changes by its own commit order).
 *
 * Every committed write gets `seq = max(now, floor + 1)`, where `floor` is the highest of every seq written and
 * every watermark ever issued. A sync's watermark H = max(floor, now) is recorded as issued, so anything committed
 * afterwards gets seq > H and the next sync (last_sync = H) picks it up: a change committed while a paged sync runs
 * is never missed. Values are epoch microseconds so `server_time` is a real timestamp.
 *
 * Only the server moves the floor: its own commits and the watermarks it issues. Nothing a client presents (a
 * last_sync, a cursor, an ack) ever raises it; those are checked against what was issued to the client's home
 * (watermarks.ts).
 *
 * The floor lives in memory. It is seeded at start from max(seq), the persisted `meta.floor` and the persisted
 * per-home watermarks, the persisted values plus the start slack (the most an issued watermark can have run ahead of
 * what was persisted before a crash; 0 after a clean close), so after a restart it is still above anything issued.
 * Write transactions record the floor exactly; an issued watermark updates it, without fsync, when it runs more than
 * PERSIST_SLACK_US ahead of the persisted value.
 */
import type { Micros } from '../../protocol/index.js';
import { relaxedWrite, type ServerDb } from '../db.js';
import { PERSIST_SLACK_US } from './watermarks.js';

export interface SequencerOptions {
  readonly db: ServerDb;
  readonly clock: () => number;
  /** Added to the persisted floor at start (see IssuedWatermarks.startSlackUs). */
  readonly startSlackUs: Micros;
  /** Another lower bound for the floor at start (the persisted per-home watermarks plus the slack). */
  readonly minFloor: Micros;
}

export class Sequencer {
  private floor: Micros;
  private persisted: Micros;
  private readonly clock: () => number;
  private readonly writeMeta: (value: string) => void;
  private readonly writeMetaRelaxed: (value: string) => void;

  constructor(options: SequencerOptions) {
    const { db } = options;
    this.clock = options.clock;
    const maxSeq = (db.prepare('SELECT max(seq) AS m FROM entities').get() as { m: number | null }).m ?? 0;
    const maxConflict = (db.prepare('SELECT max(seq) AS m FROM conflicts').get() as { m: number | null }).m ?? 0;
    const metaRow = db.prepare("SELECT value FROM meta WHERE key = 'floor'").get() as { value: string } | undefined;
    const meta = metaRow === undefined ? 0 : Number(metaRow.value) || 0;
    this.persisted = meta;
    this.floor = Math.max(maxSeq, maxConflict, meta === 0 ? 0 : meta + options.startSlackUs, options.minFloor);
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

  /** Records the floor inside a write transaction that already runs (no extra fsync). */
  persistInTx(): void {
    if (this.floor > this.persisted) {
      this.writeMeta(String(this.floor));
      this.persisted = this.floor;
    }
  }

  /** Writes the exact floor (clean close). */
  flush(): void {
    if (this.floor > this.persisted) this.writeMetaRelaxed(String(this.floor));
    this.persisted = this.floor;
  }
}

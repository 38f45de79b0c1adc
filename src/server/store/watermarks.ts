/**
 * What the server issued to each home (docs/protocol.md §Watermark and delta: watermarks are per home and only the
 * server's own commits move them; nothing a client sends moves any clock).
 *
 * Every `server_time` the server sends to a client of a home (a sync_delta's watermark H, a sync_result's or a
 * sync_ack_result's server_time) is recorded here as issued to that home. A `last_sync`, cursor or
 * `sync_completed_at` a client presents is checked against the highest value issued to its home: anything later was
 * never issued (a restored backup, a forged value) and is refused — and nothing a client presents is ever written or
 * moves the commit sequence.
 *
 * The highest issued value of each home is persisted in `homes.issued_through` without fsync, and only when it has
 * run more than PERSIST_SLACK_US past the persisted value, so a busy home costs at most one relaxed write a second.
 * After a crash the exact value may be lost, but it is at most the persisted value + the slack: that is the bound
 * used until the home is issued something new. A clean close writes the exact values and says so (meta
 * `watermarks_exact`), so a restart adds no slack.
 */
import type { Micros } from '../../protocol/index.js';
import { relaxedWrite, type ServerDb } from '../db.js';

/** How far an issued watermark may run ahead of its persisted value. */
export const PERSIST_SLACK_US: Micros = 1_000_000;

interface HomeMark {
  /** Highest value issued in this process. */
  issued: Micros;
  /** Value in the homes row. */
  persisted: Micros;
  /** Upper bound of what was issued before this process started: persisted at start + the start slack. */
  before: Micros;
}

export class IssuedWatermarks {
  /** Slack added to persisted values read at start: 0 after a clean close, PERSIST_SLACK_US after a crash. */
  readonly startSlackUs: Micros;
  private readonly homes = new Map<string, HomeMark>();
  private readonly stmts;
  private readonly db: ServerDb;

  constructor(options: { db: ServerDb }) {
    this.db = options.db;
    const db = this.db;
    this.stmts = {
      read: db.prepare('SELECT issued_through FROM homes WHERE home_id = ?').pluck(),
      write: db.prepare('UPDATE homes SET issued_through = max(issued_through, ?) WHERE home_id = ?'),
      max: db.prepare('SELECT max(issued_through) FROM homes').pluck(),
      exact: db.prepare("SELECT value FROM meta WHERE key = 'watermarks_exact'").pluck(),
      setExact: db.prepare("INSERT INTO meta (key, value) VALUES ('watermarks_exact', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    };
    const exact = this.stmts.exact.get() === '1';
    this.startSlackUs = exact ? 0 : PERSIST_SLACK_US;
    // From now on the persisted values are not exact until the next clean close (fsynced: a crash must not leave
    // an "exact" mark behind values that ran ahead).
    if (exact) this.stmts.setExact.run('0');
  }

  /** The highest value persisted for any home, plus the start slack: a floor for the commit sequence at start. */
  startFloor(): Micros {
    const max = (this.stmts.max.get() as number | null) ?? 0;
    return max === 0 ? 0 : max + this.startSlackUs;
  }

  /** Records `value` as a server_time issued to a client of `homeId`. */
  record(homeId: string, value: Micros): void {
    const mark = this.mark(homeId);
    if (value > mark.issued) mark.issued = value;
    if (value > mark.persisted + PERSIST_SLACK_US) {
      relaxedWrite(this.db, () => this.stmts.write.run(value, homeId));
      mark.persisted = value;
    }
  }

  /** The latest server_time this server may have issued to `homeId` (0 when it never issued one). */
  bound(homeId: string): Micros {
    const mark = this.mark(homeId);
    return Math.max(mark.issued, mark.before);
  }

  /** Writes the exact issued values and marks them exact (clean close). */
  flush(): void {
    relaxedWrite(this.db, () => {
      for (const [homeId, mark] of this.homes) {
        if (mark.issued > mark.persisted) this.stmts.write.run(mark.issued, homeId);
      }
      this.stmts.setExact.run('1');
    });
  }

  private mark(homeId: string): HomeMark {
    let mark = this.homes.get(homeId);
    if (mark === undefined) {
      const persisted = (this.stmts.read.get(homeId) as number | undefined) ?? 0;
      mark = { issued: 0, persisted, before: persisted === 0 ? 0 : persisted + this.startSlackUs };
      this.homes.set(homeId, mark);
    }
    return mark;
  }
}

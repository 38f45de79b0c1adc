/**
 * The "loses nothing" oracle (issue 6), shared by the soak runner and the chaos tests: which states devices had
 * PUBACKed, what the gateway store and the server database hold, and whether any change was applied twice.
 * Devices publish `{counter: n}` with n rising per device, so "state n is on the server" means the server's counter
 * for that device is ≥ n: last-write-wins keeps only the latest state of an entity (design.md §Outbox).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { z } from 'zod';

const CounterRow = z.object({ entity_id: z.string(), data: z.string() });
const CounterData = z.looseObject({ state: z.looseObject({ counter: z.number() }) });

function countersOf(rows: unknown[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of z.array(CounterRow).parse(rows)) {
    const parsed = CounterData.safeParse(JSON.parse(row.data));
    if (parsed.success) out.set(row.entity_id, parsed.data.state.counter);
  }
  return out;
}

function readOnly<T>(path: string, read: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** Counter per device in the gateway store (`<dataDir>/gateway.db`), live entity states only. */
export function gatewayCounters(gatewayDataDir: string): Map<string, number> {
  return readOnly(join(gatewayDataDir, 'gateway.db'), (db) =>
    countersOf(db.prepare("SELECT entity_id, data FROM entities WHERE entity_type = 'entity_state' AND deleted = 0").all()),
  );
}

/** Counter per device on the server (`<dataDir>/server.db`) for one home, live entity states only. */
export function serverCounters(serverDataDir: string, home: string): Map<string, number> {
  return readOnly(join(serverDataDir, 'server.db'), (db) =>
    countersOf(db.prepare("SELECT entity_id, data FROM entities WHERE home_id = ? AND entity_type = 'entity_state' AND deleted = 0").all(home)),
  );
}

/** The most times any pushed change (client_id, client_sync_id) was written on the server; must stay ≤ 1. */
export function maxApplications(serverDataDir: string): number {
  return readOnly(join(serverDataDir, 'server.db'), (db) =>
    z.number().parse(db.prepare('SELECT COALESCE(MAX(applications), 0) FROM push_results').pluck().get()),
  );
}

export interface LossReport {
  readonly acknowledged: number;
  /** Acknowledged states the final server state holds or has superseded by a later state of the same device. */
  readonly onServer: number;
  readonly lost: number;
  /** `device: acked n, server m` for every device with a lost state. */
  readonly details: string[];
}

const maxOf = (list: readonly number[]): number => list.reduce((a, b) => (b > a ? b : a), -1);

/** Every PUBACKed state, per device, in acknowledgement order (a device publishes one state at a time). */
export class AckLog {
  readonly #acked = new Map<string, number[]>();
  count = 0;

  record(device: string, counter: number): void {
    let list = this.#acked.get(device);
    if (list === undefined) this.#acked.set(device, (list = []));
    list.push(counter);
    this.count += 1;
  }

  latest(): Map<string, number> {
    return new Map([...this.#acked].map(([d, list]) => [d, maxOf(list)]));
  }

  /** Acknowledged states that `holder` (device → counter) does not hold, not even superseded. */
  missingFrom(holder: ReadonlyMap<string, number>): LossReport {
    let lost = 0;
    const details: string[] = [];
    for (const [device, list] of this.#acked) {
      const have = holder.get(device) ?? -1;
      const missing = list.filter((n) => n > have).length;
      if (missing > 0) details.push(`${device}: acked ${maxOf(list)}, holds ${have}`);
      lost += missing;
    }
    return { acknowledged: this.count, onServer: this.count - lost, lost, details };
  }
}

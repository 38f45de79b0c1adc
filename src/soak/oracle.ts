/**
 * The "loses nothing" oracle (docs/testing.md), shared by the soak runner and the chaos tests: which states devices had
 * PUBACKed, what the gateway store and the server database hold, and whether any change was applied twice.
 * Devices publish `{counter: n}` with n rising per device, so "state n is on the server" means the server's counter
 * for that device is ≥ n: last-write-wins, like the outbox (one row per entity), keeps only the latest state.
 */
import { z } from 'zod';
import { liveStateData, maxPushApplications } from '../server/store/inspect.js';
import { openStoreReader, storePath } from '../store/index.js';

const CounterData = z.looseObject({ state: z.looseObject({ counter: z.number() }) });

function countersOf(rows: ReadonlyArray<{ entityId: string; data: unknown }>): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of rows) {
    const parsed = CounterData.safeParse(row.data);
    if (parsed.success) out.set(row.entityId, parsed.data.state.counter);
  }
  return out;
}

/** Counter per device in the gateway store (`<dataDir>/gateway.db`), live entity states only. */
export function gatewayCounters(gatewayDataDir: string): Map<string, number> {
  const reader = openStoreReader(storePath(gatewayDataDir));
  try {
    return countersOf(reader.entities.all().filter((e) => e.entityType === 'entity_state'));
  } finally {
    reader.close();
  }
}

/** Counter per device on the server (`<dataDir>/server.db`) for one home, live entity states only. */
export function serverCounters(serverDataDir: string, home: string): Map<string, number> {
  return countersOf(liveStateData(serverDataDir, home).map((r) => ({ entityId: r.entityId, data: JSON.parse(r.data) as unknown })));
}

/** The most times any pushed change (client_id, client_sync_id) was written on the server; must stay ≤ 1. */
export function maxApplications(serverDataDir: string): number {
  return maxPushApplications(serverDataDir);
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

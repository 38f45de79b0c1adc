/**
 * Push settlements: which entities a push result decided, and at which server_time. While a live wait is held a push
 * runs on another connection (docs/architecture.md §Scheduler), so the held request may be answered with a delta
 * computed *before* the push committed and arrive *after* its result was applied. Such a page carries, for a pushed
 * entity, nothing newer than what the push result said (the server's watermarks and commit sequence are one
 * increasing clock: a page whose server_time H is below the push's server_time P was computed before the push
 * committed). The pull phase hands the keys decided after H to the delta program, which skips them
 * (delta-apply.ts). Had the page been submitted first, the entity's outbox row would still be there and the pending
 * rule would keep the local version.
 *
 * Held by the sync client (no module state); bounded by the entities pushed since the last applied watermark.
 */
import type { Micros } from '../protocol/index.js';
import { remoteKey } from './delta-apply.js';

export class PushSettlements {
  /** remoteKey → server_time (µs) of the push result that decided the entity last. */
  readonly #decidedAt = new Map<string, Micros>();

  /** A push result at `serverMicros` decided these entities (applied, or lost to the server's version). */
  record(entities: Iterable<{ readonly entityType: string; readonly entityId: string }>, serverMicros: Micros): void {
    for (const { entityType, entityId } of entities) {
      const key = remoteKey(entityType, entityId);
      this.#decidedAt.set(key, Math.max(this.#decidedAt.get(key) ?? 0, serverMicros));
    }
  }

  /** Keys decided by a push result later than a page watermarked `serverMicros`. */
  after(serverMicros: Micros): string[] {
    const keys: string[] = [];
    for (const [key, at] of this.#decidedAt) if (at > serverMicros) keys.push(key);
    return keys;
  }

  /**
   * A delta watermarked `serverMicros` was applied: every later request's page is watermarked at least that high, so
   * settlements at or below it can never matter again.
   */
  prune(serverMicros: Micros): void {
    for (const [key, at] of this.#decidedAt) if (at <= serverMicros) this.#decidedAt.delete(key);
  }

  get size(): number {
    return this.#decidedAt.size;
  }
}

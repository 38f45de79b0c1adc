/**
 * Convergence check and self-repair (docs/protocol.md §Convergence digest): after each pull that brought the server's
 * digest, the gateway compares it with its own store; on a mismatch it asks for the per-bucket digests if it does not
 * have them, then pulls the differing buckets whole (a repair: their entities re-sent, local synced entities of those
 * buckets the server lacks removed) — never a full resync of everything. Each detection is logged once, counted, and
 * shown in `status`; the periodic full reconcile stays as the backstop.
 */
import type { Logger } from '../log.js';
import { parseTimestamp } from '../protocol/index.js';
import type { GatewayStore } from '../store/index.js';
import { compareDigest, type DigestVerdict } from './digest-check.js';
import type { PullReport } from './pull.js';

export interface ConvergenceStatus {
  readonly checks: number;
  readonly matches: number;
  readonly skipped: number;
  readonly mismatches: number;
  readonly repairs: number;
  /** Entities re-sent or removed by repairs. */
  readonly repairedEntities: number;
  /** Local epoch ms of the last comparison, and its result. */
  readonly lastCheckAt: number | null;
  readonly lastResult: 'match' | 'skipped' | 'mismatch' | null;
  readonly lastMismatch: { readonly at: number; readonly buckets: readonly number[]; readonly repaired: number; readonly resent: number } | null;
  /** Cost of the local digest: last and total milliseconds. */
  readonly lastCheckMs: number;
  readonly totalCheckMs: number;
}

export interface ConvergenceDeps {
  readonly store: Pick<GatewayStore, 'entities' | 'outbox'>;
  readonly logger: Logger;
  readonly now: () => number;
  /** Keys a push result decided after a watermark (settlements.ts). */
  readonly settledAfter: (serverMicros: number) => string[];
}

export class ConvergenceChecker {
  readonly #deps: ConvergenceDeps;
  #status: ConvergenceStatus = {
    checks: 0,
    matches: 0,
    skipped: 0,
    mismatches: 0,
    repairs: 0,
    repairedEntities: 0,
    lastCheckAt: null,
    lastResult: null,
    lastMismatch: null,
    lastCheckMs: 0,
    totalCheckMs: 0,
  };

  constructor(deps: ConvergenceDeps) {
    this.#deps = deps;
  }

  get status(): ConvergenceStatus {
    return this.#status;
  }

  /** Compares a pull's digest (absent: a server without the extension, nothing to do) with the store. */
  check(pulled: PullReport, serverMicros: number): DigestVerdict | undefined {
    if (pulled.digest === undefined) return undefined;
    const started = performance.now();
    const dirtyKeys = new Set([...this.#deps.store.outbox.pendingKeys(), ...this.#deps.settledAfter(serverMicros)]);
    const verdict = compareDigest({
      digest: pulled.digest,
      ...(pulled.digestBuckets === undefined ? {} : { buckets: pulled.digestBuckets }),
      entities: this.#deps.store.entities.all({ withDeleted: true }),
      dirtyKeys,
    });
    const ms = performance.now() - started;
    const s = this.#status;
    this.#status = {
      ...s,
      checks: s.checks + 1,
      matches: s.matches + (verdict.result === 'match' ? 1 : 0),
      skipped: s.skipped + (verdict.result === 'skipped' ? 1 : 0),
      lastCheckAt: this.#deps.now(),
      lastResult: verdict.result,
      lastCheckMs: ms,
      totalCheckMs: s.totalCheckMs + ms,
    };
    return verdict;
  }

  /**
   * The check after a pull, and its repair: a home digest that differs is narrowed with the per-bucket digests (one
   * more, normally empty, pull), then the differing buckets are pulled whole (`pullAgain` runs a pull phase with
   * those options).
   */
  async verify(
    pulled: PullReport,
    serverMicros: number,
    pullAgain: (extra: { readonly digestBuckets?: true; readonly repairBuckets?: readonly number[] }) => Promise<PullReport>,
  ): Promise<void> {
    let verdict = this.check(pulled, serverMicros);
    if (verdict?.result === 'mismatch' && verdict.buckets === null) {
      const narrowed = await pullAgain({ digestBuckets: true });
      const at = parseTimestamp(narrowed.serverTime);
      verdict = at === undefined ? undefined : this.check(narrowed, at);
    }
    if (verdict?.result !== 'mismatch' || verdict.buckets === null) return;
    const repair = await pullAgain({ repairBuckets: verdict.buckets });
    this.repaired(verdict.buckets, repair.applied + repair.removed, repair.pulled);
  }

  /**
   * Records a detected mismatch and its repair (`resent`: entities the server sent for the buckets, `repaired`: those
   * that changed or were removed here); one log line per detection.
   */
  repaired(buckets: readonly number[], repaired: number, resent: number): void {
    const s = this.#status;
    this.#status = {
      ...s,
      mismatches: s.mismatches + 1,
      repairs: s.repairs + 1,
      repairedEntities: s.repairedEntities + repaired,
      lastMismatch: { at: this.#deps.now(), buckets, repaired, resent },
    };
    this.#deps.logger.warn({ buckets, repaired, resent }, 'convergence digest mismatch: the differing buckets were pulled again from the server');
  }
}

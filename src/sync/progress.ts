/** Progress lines for long work (a big initial sync, a backlog drain): counts and rate, at most every `everyMs`. */
import type { Logger } from '../log.js';

export class Progress {
  readonly #log: Logger;
  readonly #what: string;
  readonly #everyMs: number;
  readonly #now: () => number;
  readonly #startedAt: number;
  #lastLogAt: number;
  #count = 0;
  #logged = false;

  constructor(options: { logger: Logger; what: string; everyMs: number; now?: () => number }) {
    this.#log = options.logger;
    this.#what = options.what;
    this.#everyMs = options.everyMs;
    this.#now = options.now ?? (() => performance.now());
    this.#startedAt = this.#now();
    this.#lastLogAt = this.#startedAt;
  }

  add(n: number, extra: Record<string, unknown> = {}): void {
    this.#count += n;
    const now = this.#now();
    if (now - this.#lastLogAt < this.#everyMs) return;
    this.#lastLogAt = now;
    this.#logged = true;
    this.#log.info({ ...extra, done: this.#count, perSecond: this.rate(now) }, `${this.#what} in progress`);
  }

  /** Logs a closing line if progress was logged (so a long job always ends with its totals). */
  finish(extra: Record<string, unknown> = {}): void {
    if (!this.#logged) return;
    this.#log.info({ ...extra, done: this.#count, perSecond: this.rate(this.#now()) }, `${this.#what} finished`);
  }

  rate(now: number = this.#now()): number {
    const seconds = Math.max(0.001, (now - this.#startedAt) / 1000);
    return Math.round(this.#count / seconds);
  }
}

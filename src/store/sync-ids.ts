/**
 * Client sync ids: every new local version of an entity gets a new id, so a push result for an
 * older version (matched by client_sync_id) never clears a newer one. The id doubles as the version's `sync_id` on the
 * server, which breaks ties inside the 1 s window (seed §Last-Write-Wins Rules "higher sync_id wins"): it is
 * time-ordered — 14 lowercase hex digits of epoch microseconds, then '-' and 12 random hex digits — so a later change
 * has a higher id. One generator per store writer (no module state): ids are strictly increasing per generator.
 */
import { randomBytes } from 'node:crypto';

// One randomBytes call per 680 ids instead of one per id: a small synchronous randomBytes costs several µs, which
// ingest pays for every entity it writes (measured ~20 % of a group commit's CPU).
const POOL_SIZE = 4080;

export class ClientSyncIds {
  #lastMicros = 0;
  #pool = Buffer.alloc(0);
  #offset = 0;

  /**
   * A new client sync id. Pass the server-corrected time (StampClock.nowMicros()); ids are strictly increasing even
   * when the clock stands still or steps back.
   */
  next(nowMicros: number = Date.now() * 1000): string {
    const micros = Math.max(Math.floor(nowMicros), this.#lastMicros + 1);
    this.#lastMicros = micros;
    return `${micros.toString(16).padStart(14, '0')}-${this.#random6Hex()}`;
  }

  #random6Hex(): string {
    if (this.#offset + 6 > this.#pool.length) {
      this.#pool = randomBytes(POOL_SIZE);
      this.#offset = 0;
    }
    const hex = this.#pool.toString('hex', this.#offset, this.#offset + 6);
    this.#offset += 6;
    return hex;
  }
}

const CLIENT_SYNC_ID_RE = /^[0-9a-f]{14}-[0-9a-f]{12}$/;

export function isClientSyncId(text: string): boolean {
  return CLIENT_SYNC_ID_RE.test(text);
}

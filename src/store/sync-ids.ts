/**
 * Client sync ids (design.md §Outbox): every new local version of an entity gets a new id, so a push result for an
 * older version (matched by client_sync_id) never clears a newer one. The id doubles as the version's `sync_id` on the
 * server, which breaks ties inside the 1 s window (seed §Last-Write-Wins Rules "higher sync_id wins"): it is
 * time-ordered — 14 lowercase hex digits of epoch microseconds, then '-' and 12 random hex digits — so a later change
 * has a higher id.
 */
import { randomBytes } from 'node:crypto';

let lastMicros = 0;

// One randomBytes call per 680 ids instead of one per id: a small synchronous randomBytes costs several µs, which
// ingest pays for every entity it writes (measured ~20 % of a group commit's CPU).
const POOL_SIZE = 4080;
let pool = Buffer.alloc(0);
let poolOffset = 0;

function random6Hex(): string {
  if (poolOffset + 6 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + 6);
  poolOffset += 6;
  return hex;
}

/**
 * A new client sync id. Pass the server-corrected time (StampClock.nowMicros()) when you have it; ids are strictly
 * increasing within the process even when the clock stands still or steps back.
 */
export function newClientSyncId(nowMicros: number = Date.now() * 1000): string {
  const micros = Math.max(Math.floor(nowMicros), lastMicros + 1);
  lastMicros = micros;
  return `${micros.toString(16).padStart(14, '0')}-${random6Hex()}`;
}

const CLIENT_SYNC_ID_RE = /^[0-9a-f]{14}-[0-9a-f]{12}$/;

export function isClientSyncId(text: string): boolean {
  return CLIENT_SYNC_ID_RE.test(text);
}

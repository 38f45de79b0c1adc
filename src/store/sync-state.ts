/**
 * Sync state of the gateway (seed §Client State): key/value rows of JSON in `sync_state`. Keys: last_sync (the
 * watermark, a server_time string — design.md §Watermark), clock_offset_ms, tokens, last_sync_at, last_result,
 * last_error, mode. Every value is validated with its schema when read (a damaged row reads as absent, never a crash).
 */
import { z } from 'zod';
import type Database from 'better-sqlite3';
import type { Db } from './db.js';

export const TokensStateSchema = z.object({
  access_token: z.string().min(1),
  /** epoch ms, local clock */
  access_expires_at: z.number(),
  access_issued_at: z.number(),
  refresh_token: z.string().min(1),
  refresh_expires_at: z.number().nullable(),
});
export type TokensState = z.infer<typeof TokensStateSchema>;

export const SyncModeSchema = z.enum(['online', 'backoff', 'offline', 'stopped']);
export type SyncMode = z.infer<typeof SyncModeSchema>;

export const LastResultSchema = z.object({
  ok: z.boolean(),
  at: z.number(),
  pulled: z.number().optional(),
  pushed: z.number().optional(),
  conflicts: z.number().optional(),
  rejected: z.number().optional(),
  durationMs: z.number().optional(),
});
export type LastResult = z.infer<typeof LastResultSchema>;

export const LastErrorSchema = z.object({ code: z.string(), message: z.string(), at: z.number() });
export type LastError = z.infer<typeof LastErrorSchema>;

const SCHEMAS = {
  last_sync: z.string(),
  clock_offset_ms: z.number(),
  tokens: TokensStateSchema,
  last_sync_at: z.number(),
  last_result: LastResultSchema,
  last_error: LastErrorSchema,
  mode: SyncModeSchema,
} as const;

export type SyncStateKey = keyof typeof SCHEMAS;
export type SyncStateValue<K extends SyncStateKey> = z.infer<(typeof SCHEMAS)[K]>;

/** Typed access to the sync_state table; statements prepared once. */
export class SyncStateRepo {
  readonly #get: Database.Statement<[string], { value: string }>;
  readonly #set: Database.Statement<[string, string]>;
  readonly #del: Database.Statement<[string]>;

  constructor(db: Db) {
    this.#get = db.prepare<[string], { value: string }>('SELECT value FROM sync_state WHERE key = ?');
    this.#set = db.prepare<[string, string]>(
      'INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    );
    this.#del = db.prepare<[string]>('DELETE FROM sync_state WHERE key = ?');
  }

  get<K extends SyncStateKey>(key: K): SyncStateValue<K> | undefined {
    const row = this.#get.get(key);
    if (row === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(row.value);
    } catch {
      return undefined;
    }
    const parsed = SCHEMAS[key].safeParse(json);
    return parsed.success ? (parsed.data as SyncStateValue<K>) : undefined;
  }

  set<K extends SyncStateKey>(key: K, value: SyncStateValue<K>): void {
    this.#set.run(key, JSON.stringify(value));
  }

  delete(key: SyncStateKey): void {
    this.#del.run(key);
  }
}

export interface SyncStatus {
  readonly pending: number;
  /** Age in ms of the oldest pending change (local clock), null when nothing is pending. */
  readonly oldestPendingAgeMs: number | null;
  readonly lastSync: string | null;
  readonly lastSyncAt: number | null;
  readonly lastResult: LastResult | null;
  readonly lastError: LastError | null;
  readonly mode: SyncMode | null;
  readonly conflicts: number;
}

/** What `status` prints (issue 3 §Interfaces): read straight from the store, works while the daemon runs. */
export function readSyncStatus(db: Db, nowMs: number = Date.now()): SyncStatus {
  const state = new SyncStateRepo(db);
  const outbox = db
    .prepare<[], { n: number; oldest: number | null }>('SELECT COUNT(*) AS n, MIN(first_queued_at) AS oldest FROM outbox')
    .get() ?? { n: 0, oldest: null };
  const conflicts = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM conflicts').get() ?? { n: 0 };
  return {
    pending: outbox.n,
    oldestPendingAgeMs: outbox.oldest === null ? null : Math.max(0, nowMs - outbox.oldest),
    lastSync: state.get('last_sync') ?? null,
    lastSyncAt: state.get('last_sync_at') ?? null,
    lastResult: state.get('last_result') ?? null,
    lastError: state.get('last_error') ?? null,
    mode: state.get('mode') ?? null,
    conflicts: conflicts.n,
  };
}

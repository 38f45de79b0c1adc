/**
 * Sync state of the gateway (seed §Client State): key/value rows of JSON in `sync_state`. Keys: last_sync (the
 * watermark, a server_time string — docs/protocol.md §Watermark and delta), clock_offset_ms, tokens, last_sync_at,
 * last_result, last_error, mode. Every value is checked with its schema when read; a row that fails is logged and
 * counted as corrupt and reads as absent, never a crash.
 *
 * In the daemon the store owns the only writer, so the values live in memory (loaded once, kept up to date by every
 * committed write, including the watermark a delta page writes in its own transaction): reads cost nothing, and a
 * value set now is read back now even while its relaxed write waits for the writer.
 */
import { z } from 'zod';
import type { CorruptRow } from './types.js';

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

/**
 * What the gateway learnt about its server (docs/protocol.md §Compatibility): the profile in use and how it was
 * decided, whether the server signs its answers and takes gzip bodies, the FunkyGibbon house pushes go to, and what
 * is wrong with the server, in words, by topic (shown by `status`).
 */
export const ServerProfileStateSchema = z.object({
  profile: z.enum(['inbetweenies', 'funkygibbon-v1']),
  decided_by: z.enum(['config', 'health', 'sync_probe', 'fallback']),
  decided_at: z.number(),
  gzip_refused: z.boolean(),
  house_id: z.string().nullable(),
  problems: z.record(z.string().max(64), z.string().max(1000)),
});
export type ServerProfileState = z.infer<typeof ServerProfileStateSchema>;

const SCHEMAS = {
  last_sync: z.string(),
  clock_offset_ms: z.number(),
  tokens: TokensStateSchema,
  last_sync_at: z.number(),
  last_result: LastResultSchema,
  last_error: LastErrorSchema,
  mode: SyncModeSchema,
  health_probe: z.number(),
  server_profile: ServerProfileStateSchema,
} as const;

export type SyncStateKey = keyof typeof SCHEMAS;
export type SyncStateValue<K extends SyncStateKey> = z.infer<(typeof SCHEMAS)[K]>;

export function isSyncStateKey(key: string): key is SyncStateKey {
  return Object.prototype.hasOwnProperty.call(SCHEMAS, key);
}

/** Parses a stored value with its key's schema; the problem when it does not parse. */
export function parseStateValue<K extends SyncStateKey>(key: K, json: string): { ok: true; value: SyncStateValue<K> } | { ok: false; problem: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return { ok: false, problem: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  const parsed = SCHEMAS[key].safeParse(raw);
  return parsed.success ? { ok: true, value: parsed.data as SyncStateValue<K> } : { ok: false, problem: parsed.error.issues.map((i) => i.message).join('; ') };
}

export type SyncStateEntries = { readonly [K in SyncStateKey]?: SyncStateValue<K> };

/**
 * Typed sync state: reads and writes by key. A value set is read back at once; its relaxed write is queued, and the
 * returned promise settles when it committed or failed — it never rejects: a failed write is logged and counted by
 * the store, and the value stays in memory (every key is diagnostics or can be learnt again).
 */
export interface SyncState {
  get<K extends SyncStateKey>(key: K): SyncStateValue<K> | undefined;
  set<K extends SyncStateKey>(key: K, value: SyncStateValue<K>): Promise<void>;
  /** Several keys in one transaction (with every remembered one). */
  setMany(entries: SyncStateEntries): Promise<void>;
  /**
   * Values read back at once but written later — with the next write of any key, by `flush()`, or when the store
   * closes — for what a crash may lose and is learnt again (the watermark of an idle pull, status rows): an SD card
   * is spared a commit per sync cycle.
   */
  remember(entries: SyncStateEntries): void;
  /** Writes the remembered values now (one relaxed commit; nothing when none is waiting). */
  flush(): Promise<void>;
  delete(key: SyncStateKey): Promise<void>;
}

export interface SyncStateBacking {
  /** JSON text of every row (at open). */
  readonly rows: () => Array<{ key: string; value: string }>;
  /** Writes rows (null deletes); never rejects. */
  readonly write: (entries: Array<[SyncStateKey, string | null]>) => Promise<void>;
  readonly corrupt: (row: CorruptRow) => void;
}

/** The daemon's sync state: values in memory, writes through the store's writer. */
export class CachedSyncState implements SyncState {
  readonly #values = new Map<SyncStateKey, unknown>();
  /** Remembered, not yet written: key → JSON. */
  readonly #dirty = new Map<SyncStateKey, string>();
  readonly #backing: SyncStateBacking;

  constructor(backing: SyncStateBacking) {
    this.#backing = backing;
    for (const { key, value } of backing.rows()) this.committed(key, value);
  }

  get<K extends SyncStateKey>(key: K): SyncStateValue<K> | undefined {
    if (!this.#values.has(key)) return undefined;
    const parsed = SCHEMAS[key].safeParse(this.#values.get(key));
    return parsed.success ? (parsed.data as SyncStateValue<K>) : undefined;
  }

  set<K extends SyncStateKey>(key: K, value: SyncStateValue<K>): Promise<void> {
    return this.#write([[key, this.#remember(key, value)]]);
  }

  setMany(entries: SyncStateEntries): Promise<void> {
    return this.#write(this.#rows(entries));
  }

  remember(entries: SyncStateEntries): void {
    for (const [key, json] of this.#rows(entries)) this.#dirty.set(key, json);
  }

  flush(): Promise<void> {
    return this.#dirty.size === 0 ? Promise.resolve() : this.#write([]);
  }

  delete(key: SyncStateKey): Promise<void> {
    this.#values.delete(key);
    this.#dirty.delete(key);
    return this.#write([[key, null]]);
  }

  /** Writes `rows` with every remembered value (the given ones win). */
  #write(rows: Array<[SyncStateKey, string | null]>): Promise<void> {
    for (const [key] of rows) this.#dirty.delete(key);
    const all: Array<[SyncStateKey, string | null]> = [...this.#dirty.entries(), ...rows];
    this.#dirty.clear();
    return this.#backing.write(all);
  }

  #rows(entries: SyncStateEntries): Array<[SyncStateKey, string]> {
    const rows: Array<[SyncStateKey, string]> = [];
    for (const key of Object.keys(entries)) {
      if (isSyncStateKey(key)) rows.push([key, this.#remember(key, Reflect.get(entries, key))]);
    }
    return rows;
  }

  /** Checks a value against its key's schema (a wrong value is a programming error: it throws), keeps it, returns its JSON. */
  #remember(key: SyncStateKey, value: unknown): string {
    const checked: unknown = SCHEMAS[key].parse(value);
    this.#values.set(key, checked);
    return JSON.stringify(checked);
  }

  /** A write some transaction committed (a delta page's watermark, say): the in-memory value follows it. */
  committed(key: string, json: string | null): void {
    if (!isSyncStateKey(key)) return; // other keys (none today) are not part of the typed state
    this.#dirty.delete(key); // a newer value is in the file now
    if (json === null) {
      this.#values.delete(key);
      return;
    }
    const parsed = parseStateValue(key, json);
    if (!parsed.ok) {
      this.#values.delete(key);
      this.#backing.corrupt({ table: 'sync_state', key, problem: parsed.problem });
      return;
    }
    this.#values.set(key, parsed.value);
  }
}

/** Sync state read from the file at every call (the CLI, while the daemon runs). */
export class FileSyncState {
  readonly #json: (key: string) => string | undefined;
  readonly #corrupt: (row: CorruptRow) => void;

  constructor(json: (key: string) => string | undefined, corrupt: (row: CorruptRow) => void) {
    this.#json = json;
    this.#corrupt = corrupt;
  }

  get<K extends SyncStateKey>(key: K): SyncStateValue<K> | undefined {
    const json = this.#json(key);
    if (json === undefined) return undefined;
    const parsed = parseStateValue(key, json);
    if (parsed.ok) return parsed.value;
    this.#corrupt({ table: 'sync_state', key, problem: parsed.problem });
    return undefined;
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

/** What a status is made of: any store part set that can answer these (the daemon's store, the CLI's reader). */
export interface StatusSource {
  readonly syncState: { get<K extends SyncStateKey>(key: K): SyncStateValue<K> | undefined };
  readonly outbox: { summary(): { pending: number; oldestQueuedAt: number | null } };
  readonly conflicts: { count(): number };
}

/** What `status` prints (works while the daemon runs: the CLI reads the file). */
export function readSyncStatus(source: StatusSource, nowMs: number = Date.now()): SyncStatus {
  const { pending, oldestQueuedAt } = source.outbox.summary();
  const state = source.syncState;
  return {
    pending,
    oldestPendingAgeMs: oldestQueuedAt === null ? null : Math.max(0, nowMs - oldestQueuedAt),
    lastSync: state.get('last_sync') ?? null,
    lastSyncAt: state.get('last_sync_at') ?? null,
    lastResult: state.get('last_result') ?? null,
    lastError: state.get('last_error') ?? null,
    mode: state.get('mode') ?? null,
    conflicts: source.conflicts.count(),
  };
}

/**
 * The one store interface of the sync server, with two implementations: SQLite (the embedded default, one process,
 * `--data-dir`) and PostgreSQL (many homes, several stateless instances on one database, `--database-url`). The
 * handlers speak only to this interface; every method is async (node-postgres is), the SQLite implementation stays
 * synchronous underneath.
 *
 * Watermarks are per home and only the server's own commits and issues move them; nothing a client sends moves any
 * clock (docs/protocol.md §Watermark and delta, §Watermark across instances).
 */
import type { Micros, WirePushChange } from '../../protocol/index.js';
import type { ClientCredentials, ClientRecord, IssuedTokens, TokenLookup } from './accounts.js';
import type { PullPage, PullQuery } from './pull.js';
import type { PushContext, PushOutcome } from './validate.js';
import type { WireApplied, WireConflict, WireHistoryEntry } from '../../protocol/index.js';

export type StoreKind = 'sqlite' | 'postgres';

export interface TokenTtl {
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
}

/** Why a watermark a client presents cannot start a delta (both are 409 INVALID_SYNC_STATE). */
export type WatermarkRefusal = 'future_watermark' | 'purged';

/** Opening a sync (first page): the presented last_sync is checked, then a watermark H is issued to the home. */
export type OpenedSync = { readonly ok: true; readonly h: Micros } | { readonly ok: false; readonly reason: WatermarkRefusal };

export type NonceCheck = { readonly ok: true } | { readonly ok: false; readonly reason: 'replayed' | 'stale' };

/** A page of a delta, and the home's purge horizon read in the same snapshot (a purge between pages is seen). */
export interface DeltaPage extends PullPage {
  readonly purgedThrough: Micros;
}

/** A home's convergence digest as wire hex (docs/protocol.md §Convergence digest). */
export interface HomeDigest {
  readonly home: string;
  /** The 16 bucket digests. */
  readonly buckets: string[];
}

/** What opens a sync: the first page's query, and whether to read the home's digest with it. */
export type OpenPageQuery = Omit<PullQuery, 'h' | 'after'> & { readonly digest?: boolean };

/**
 * The first page of a sync: what `openSync` answers, and with a watermark the page read under the same lock (and
 * the home digest as of H when asked).
 */
export type OpenedPage =
  | { readonly ok: true; readonly h: Micros; readonly page: DeltaPage; readonly digest?: HomeDigest }
  | { readonly ok: false; readonly reason: WatermarkRefusal };

export interface AppliedPush {
  readonly applied: WireApplied[];
  readonly conflicts: WireConflict[];
  /** The push's server_time: the home's clock after it (every seq it wrote is at or below it). */
  readonly serverTime: Micros;
  /** True when something was written (the home's live waits are woken). */
  readonly wrote: boolean;
  /** Changes whose updated_at the clamp moved (docs/protocol.md §Clamp). */
  readonly clamped: number;
  /** Versions recorded in the sync history. */
  readonly history: number;
}

export interface HistoryQuery {
  readonly homeId: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly limit: number;
  /** Entries with an id below this (the previous page's `next_before`). */
  readonly before: number | null;
}

/** A page of an entity's sync history, newest first. */
export interface HistoryPage {
  readonly entries: WireHistoryEntry[];
  readonly more: boolean;
  readonly nextBefore: number | null;
}

/** An entity as the server holds it, for tests and tools. */
export interface StoredEntity {
  readonly entity_type: string;
  readonly entity_id: string;
  readonly data: Record<string, unknown>;
  readonly updated_at: Micros;
  readonly sync_id: string;
  readonly deleted: boolean;
  readonly seq: Micros;
  readonly origin_client: string | null;
}

export interface MaintenanceReport {
  readonly tombstones: number;
  readonly results: number;
  readonly conflicts: number;
  readonly tokens: number;
  readonly nonces: number;
  /** Sync history entries forgotten (age or count per entity). */
  readonly syncHistory: number;
}

export interface MaintenanceOptions {
  readonly retentionSeconds: number;
  /** The nonce window: nonces whose request timestamp is older than now − window are forgotten. */
  readonly nonceWindowSeconds: number;
  /** Run only when the last run (by any instance) is at least this old; 0 forces a run. */
  readonly minIntervalSeconds: number;
  /** Sync history: entries older than this are forgotten … */
  readonly historyRetentionSeconds: number;
  /** … and beyond this many per entity (the newest are kept). */
  readonly historyMaxPerEntity: number;
}

export interface SyncStore {
  readonly kind: StoreKind;
  /** Keys cursor MACs; random per database, shared by every instance. */
  readonly cursorKey: string;

  // accounts (seed §Authentication)
  addClient(homeId: string): Promise<ClientCredentials>;
  getClient(clientId: string): Promise<ClientRecord | undefined>;
  /** Constant-time check of a client's credentials; undefined when they do not match. */
  authenticate(clientId: string, secret: string): Promise<ClientRecord | undefined>;
  issueTokens(clientId: string, ttl: TokenTtl): Promise<IssuedTokens>;
  lookupToken(token: string, kind: 'access' | 'refresh'): Promise<TokenLookup>;
  /**
   * Revokes the refresh token (and its family) and issues a new pair, atomically; undefined when the token was
   * consumed meanwhile (a concurrent rotation, on any instance, won).
   */
  rotateRefresh(refreshToken: string, clientId: string, ttl: TokenTtl): Promise<IssuedTokens | undefined>;
  recordAck(clientId: string, watermark: Micros): Promise<void>;
  /** Records a verified request's nonce; a nonce seen before (on any instance) is a replay. */
  acceptNonce(clientId: string, nonce: string, timestampSeconds: number, nowSeconds: number): Promise<NonceCheck>;

  // watermarks, per home
  /** Checks `w` (null: full sync) against what was issued to the home and its purge horizon, then issues H. */
  openSync(homeId: string, w: Micros | null): Promise<OpenedSync>;
  /**
   * openSync and the first page, atomically: no commit of the home lands between issuing H and reading the page, so a
   * first page holds every entity whose latest version is at or below H (on PostgreSQL the home's row lock is held
   * across both; pushes of the home wait the few ms of the read).
   */
  openPage(q: OpenPageQuery): Promise<OpenedPage>;
  /** The highest watermark issued to the home (the bound for last_sync, cursors, acks). */
  issuedBound(homeId: string): Promise<Micros>;
  /** A server_time for a sync_result or sync_ack_result of the home (a valid watermark, recorded as issued). */
  serverTimeFor(homeId: string): Promise<Micros>;
  /** The store's clock in µs (the database's on PostgreSQL): health's server_time. */
  nowMicros(): Promise<Micros>;

  // delta and push
  page(q: PullQuery): Promise<DeltaPage>;
  /** Conflicts recorded against the client's pushes with seq in (w, h], newest `limit`, oldest first (JSON texts). */
  conflicts(clientId: string, w: Micros | null, h: Micros, limit: number): Promise<string[]>;
  /** Applies a whole push in one durable transaction (the clamp's receive time is the store's clock). */
  applyPush(ctx: PushContext, changes: readonly WirePushChange[]): Promise<AppliedPush>;
  /** A page of an entity's sync history (the client's own home only: the caller passes its home). */
  history(q: HistoryQuery): Promise<HistoryPage>;
  /** The home's convergence digest now (tools and tests; a delta reads it with its first page). */
  digest(homeId: string): Promise<HomeDigest>;

  // jobs and tools
  /** Tombstones, old push results and conflicts, expired tokens and nonces; once across instances. */
  maintain(options: MaintenanceOptions): Promise<MaintenanceReport | undefined>;
  purgeTombstones(retentionSeconds: number): Promise<number>;
  entities(homeId: string): Promise<StoredEntity[]>;
  applicationCount(clientId: string, clientSyncId: string): Promise<number>;
  close(): Promise<void>;
}

export type { ClientCredentials, ClientRecord, IssuedTokens, PushContext, PushOutcome, TokenLookup };

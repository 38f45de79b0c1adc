/**
 * The SQLite implementation of the server's store interface (contract.ts): the embedded default, one server process
 * on one file (`--data-dir`). It wraps the synchronous ServerStore; every method runs its statements synchronously
 * inside the call, so each one is atomic with respect to every other request of the process. Nonces are kept in
 * memory (one process is the only one that can see them); the watermark rests on the process's sequencer
 * (sequencer.ts) and the issued watermarks per home (watermarks.ts).
 */
import type { Micros, WirePushChange } from '../../protocol/index.js';
import type {
  AppliedPush,
  DeltaPage,
  HistoryPage,
  HistoryQuery,
  HomeDigest,
  OpenPageQuery,
  MaintenanceOptions,
  MaintenanceReport,
  NonceCheck,
  OpenedPage,
  OpenedSync,
  StoredEntity,
  SyncStore,
  TokenTtl,
} from './contract.js';
import { ServerStore, type ClientCredentials, type ClientRecord, type IssuedTokens, type TokenLookup } from './index.js';
import { NonceCache } from './nonces.js';
import type { PullQuery } from './pull.js';
import type { PushContext } from './validate.js';

export interface SqliteStoreOptions {
  readonly dataDir: string;
  /** Wall clock in epoch ms (seqs, token lifetimes, retention); tests move it. */
  readonly clock: () => number;
  /** The signature freshness window: how long a nonce is remembered. */
  readonly nonceWindowSeconds: number;
}

export class SqliteStore implements SyncStore {
  readonly kind = 'sqlite' as const;
  /** The synchronous store underneath (SQLite-only tools and tests). */
  readonly local: ServerStore;
  private readonly nonces: NonceCache;

  constructor(options: SqliteStoreOptions) {
    this.local = new ServerStore({ dataDir: options.dataDir, clock: options.clock });
    this.nonces = new NonceCache({ windowSeconds: options.nonceWindowSeconds });
  }

  get cursorKey(): string {
    return this.local.cursorKey;
  }

  // accounts

  async addClient(homeId: string): Promise<ClientCredentials> {
    return this.local.accounts.addClient(homeId);
  }

  async getClient(clientId: string): Promise<ClientRecord | undefined> {
    return this.local.accounts.getClient(clientId);
  }

  async authenticate(clientId: string, secret: string): Promise<ClientRecord | undefined> {
    return this.local.accounts.authenticate(clientId, secret);
  }

  async issueTokens(clientId: string, ttl: TokenTtl): Promise<IssuedTokens> {
    return this.local.accounts.issueTokens(clientId, ttl);
  }

  async lookupToken(token: string, kind: 'access' | 'refresh'): Promise<TokenLookup> {
    return this.local.accounts.lookupToken(token, kind);
  }

  /** One transaction; undefined when a concurrent refresh consumed the token first. */
  async rotateRefresh(refreshToken: string, clientId: string, ttl: TokenTtl): Promise<IssuedTokens | undefined> {
    return this.local.accounts.rotateRefresh(refreshToken, clientId, ttl);
  }

  async recordAck(clientId: string, watermark: Micros): Promise<void> {
    this.local.accounts.recordAck(clientId, watermark);
  }

  async acceptNonce(clientId: string, nonce: string, timestampSeconds: number, nowSeconds: number): Promise<NonceCheck> {
    return this.nonces.accept(clientId, nonce, timestampSeconds, nowSeconds);
  }

  // watermarks

  /** Checks first (a refused request issues nothing), then issues H from the process's sequencer. */
  async openSync(homeId: string, w: Micros | null): Promise<OpenedSync> {
    return this.openNow(homeId, w);
  }

  private openNow(homeId: string, w: Micros | null): OpenedSync {
    if (w !== null && w > this.local.watermarks.bound(homeId)) return { ok: false, reason: 'future_watermark' };
    if (w !== null && w < this.local.purgedThrough(homeId)) return { ok: false, reason: 'purged' };
    return { ok: true, h: this.local.issueWatermark(homeId) };
  }

  private pageNow(q: PullQuery): DeltaPage {
    return { ...this.local.delta.page(q), purgedThrough: this.local.purgedThrough(q.homeId) };
  }

  /** Synchronous inside: nothing else of the process runs between the issue and the read. */
  async openPage(q: OpenPageQuery): Promise<OpenedPage> {
    const opened = this.openNow(q.homeId, q.w);
    if (!opened.ok) return opened;
    const page = this.pageNow({ ...q, h: opened.h, after: null });
    return { ok: true, h: opened.h, page, ...(q.digest === true ? { digest: this.local.digests.of(q.homeId) } : {}) };
  }

  async issuedBound(homeId: string): Promise<Micros> {
    return this.local.watermarks.bound(homeId);
  }

  async serverTimeFor(homeId: string): Promise<Micros> {
    return this.local.serverTimeFor(homeId);
  }

  async nowMicros(): Promise<Micros> {
    return this.local.sequencer.nowMicros();
  }

  // delta and push

  async page(q: PullQuery): Promise<DeltaPage> {
    return this.pageNow(q);
  }

  async conflicts(clientId: string, w: Micros | null, h: Micros, limit: number): Promise<string[]> {
    return this.local.delta.conflicts(clientId, w, h, limit);
  }

  async applyPush(ctx: PushContext, changes: readonly WirePushChange[]): Promise<AppliedPush> {
    const clampUs = ctx.clampToleranceUs === undefined ? undefined : this.local.sequencer.nowMicros() + ctx.clampToleranceUs;
    return this.local.push.apply(clampUs === undefined ? ctx : { ...ctx, clampUs }, changes);
  }

  async history(q: HistoryQuery): Promise<HistoryPage> {
    return this.local.history.page(q);
  }

  async digest(homeId: string): Promise<HomeDigest> {
    return this.local.digests.of(homeId);
  }

  // jobs and tools

  /** One process: the server's timer is the only caller, so every call runs (minIntervalSeconds is not needed). */
  async maintain(options: MaintenanceOptions): Promise<MaintenanceReport> {
    const tombstones = this.local.purgeTombstones(options.retentionSeconds);
    const tokens = this.local.accounts.deleteExpiredTokens();
    const history = this.local.purgeHistory(options.retentionSeconds);
    const nowMs = this.local.sequencer.nowMicros() / 1000;
    const syncHistory = this.local.history.purge(nowMs, options.historyRetentionSeconds, options.historyMaxPerEntity);
    return { tombstones, tokens, ...history, nonces: 0, syncHistory }; // nonces expire in memory as they are checked
  }

  async purgeTombstones(retentionSeconds: number): Promise<number> {
    return this.local.purgeTombstones(retentionSeconds);
  }

  async entities(homeId: string): Promise<StoredEntity[]> {
    return this.local.entities(homeId);
  }

  async applicationCount(clientId: string, clientSyncId: string): Promise<number> {
    return this.local.push.applicationCount(clientId, clientSyncId);
  }

  /** Writes the exact watermarks (this store belongs to the serving process) and closes the file. */
  async close(): Promise<void> {
    this.local.flushWatermarks();
    this.local.close();
  }
}

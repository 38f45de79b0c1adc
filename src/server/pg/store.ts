/**
 * The PostgreSQL implementation of the server's store (store/contract.ts): many homes, several stateless instances
 * on one database. Everything an instance must share lives in the database — clients and tokens, nonces (a nonce
 * used on one instance is a replay on every other), the cursor MAC key, each home's clock and purge horizon, the
 * scheduled jobs' last runs — and every seq and watermark comes from the database's clock under the home's row
 * lock (docs/protocol.md §Watermark across instances). Live wake-ups cross instances by NOTIFY (notifier.ts).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { GatewayError } from '../../errors.js';
import type { Micros, WirePushChange } from '../../protocol/index.js';
import { constantTimeEqual, hashToken, toClient, type ClientCredentials, type ClientRecord, type IssuedTokens, type TokenLookup } from '../store/accounts.js';
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
} from '../store/contract.js';
import { changeJson, partialJson, type PullQuery } from '../store/pull.js';
import { historyPage } from '../store/history.js';
import type { PushContext } from '../store/validate.js';
import { createPgPool, inTransaction } from './connect.js';
import { maintainPg, purgeTombstonesPg } from './jobs.js';
import { migratePg } from './migrate.js';
import { backfillDigestsPg, readDigest } from './digests.js';
import { applyPushPg, type PushNotice } from './push.js';
import {
  ClientRowSchema,
  EntityRowSchema,
  EntryRowSchema,
  OpenSyncRowSchema,
  PageRowSchema,
  TextValueRowSchema,
  TokenRowSchema,
  ValueRowSchema,
  rowOf,
  rowsOf,
} from './rows.js';
import { runSql, type Queryable } from './sql.js';
import { DataSchema } from '../../protocol/index.js';

export interface PgStoreOptions {
  readonly url: string;
  /** Wall clock in epoch ms for token lifetimes and ack times (tests move it); seqs use the database's clock. */
  readonly clock: () => number;
  /** Connections of this instance (default 10). */
  readonly poolSize?: number;
  /** Identifies this instance in its NOTIFY payloads (its own notifications are not delivered twice). */
  readonly instanceId?: string;
  /** Run migrations at open (default true); false refuses a database that is not at this build's schema. */
  readonly migrate?: boolean;
}

/** The payload of a change notification: home, origin client, seq and the instance that committed it. */
export function noticePayload(notice: PushNotice, instanceId: string): string {
  return JSON.stringify({ h: notice.homeId, o: notice.originClientId, s: notice.seq, i: instanceId });
}

export class PgStore implements SyncStore {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;
  readonly instanceId: string;
  private key = '';
  private readonly clock: () => number;

  private constructor(options: PgStoreOptions) {
    this.clock = options.clock;
    this.instanceId = options.instanceId ?? randomBytes(6).toString('hex');
    this.pool = createPgPool({ url: options.url, ...(options.poolSize === undefined ? {} : { max: options.poolSize }) });
    // An idle pooled connection that the database drops (restart, failover) must not crash the process.
    this.pool.on('error', () => undefined);
  }

  /** Connects, migrates (or checks the schema) and loads the shared cursor key. */
  static async open(options: PgStoreOptions): Promise<PgStore> {
    const store = new PgStore(options);
    try {
      const client = await store.pool.connect();
      try {
        await migratePg(client, undefined, { apply: options.migrate !== false });
      } finally {
        client.release();
      }
      await runSql(store.pool, 'ensureCursorKey', [randomBytes(32).toString('base64url')]);
      const row = rowOf(TextValueRowSchema, (await runSql(store.pool, 'cursorKey')).rows, 'meta');
      if (row === undefined) throw new GatewayError('STORE', 'meta.cursor_key is missing');
      store.key = row.value;
      await backfillDigestsPg(store.pool);
      return store;
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      throw err;
    }
  }

  get cursorKey(): string {
    return this.key;
  }

  // accounts

  async addClient(homeId: string): Promise<ClientCredentials> {
    if (homeId.length === 0 || homeId.length > 256) throw new RangeError(`home id must be 1..256 characters, got ${homeId.length}`);
    const clientId = `gw-${randomBytes(12).toString('hex')}`;
    const secret = randomBytes(32).toString('hex');
    await runSql(this.pool, 'addClient', [clientId, secret, homeId, this.clock()]);
    return { client_id: clientId, client_secret: secret, home_id: homeId };
  }

  async getClient(clientId: string): Promise<ClientRecord | undefined> {
    const row = rowOf(ClientRowSchema, (await runSql(this.pool, 'getClient', [clientId])).rows, 'clients');
    return row === undefined ? undefined : toClient(row);
  }

  async authenticate(clientId: string, secret: string): Promise<ClientRecord | undefined> {
    const client = await this.getClient(clientId);
    const ok = constantTimeEqual(client?.secret ?? 'no-such-client-secret-placeholder', secret);
    return ok && client !== undefined ? client : undefined;
  }

  async issueTokens(clientId: string, ttl: TokenTtl, db: pg.ClientBase | pg.Pool = this.pool): Promise<IssuedTokens> {
    const accessToken = randomBytes(32).toString('base64url');
    const refreshToken = randomBytes(32).toString('base64url');
    const family = randomBytes(12).toString('base64url');
    const now = this.clock();
    await runSql(db, 'insertTokens', [
      hashToken(accessToken),
      hashToken(refreshToken),
      clientId,
      now + ttl.accessTtlSeconds * 1000,
      now + ttl.refreshTtlSeconds * 1000,
      family,
    ]);
    return { accessToken, refreshToken, ...ttl };
  }

  async lookupToken(token: string, kind: 'access' | 'refresh'): Promise<TokenLookup> {
    const row = rowOf(TokenRowSchema, (await runSql(this.pool, 'lookupToken', [hashToken(token)])).rows, 'tokens');
    if (row === undefined || row.kind !== kind) return { ok: false, reason: 'unknown' };
    if (row.expires_at <= this.clock()) return { ok: false, reason: 'expired' };
    return { ok: true, client: toClient(row) };
  }

  /**
   * Revokes the refresh token and its family and issues a new pair, in one durable transaction. Two instances
   * rotating the same token at once: one DELETE finds it, the other finds nothing and gets undefined (UNAUTHORIZED).
   */
  async rotateRefresh(refreshToken: string, clientId: string, ttl: TokenTtl): Promise<IssuedTokens | undefined> {
    return inTransaction(this.pool, async (client) => {
      const res = await runSql(client, 'consumeRefresh', [hashToken(refreshToken), clientId]);
      if (res.rowCount !== 1) return undefined;
      const family: unknown = res.rows[0]?.family;
      if (typeof family === 'string') await runSql(client, 'deleteFamily', [family]);
      return this.issueTokens(clientId, ttl, client);
    });
  }

  async recordAck(clientId: string, watermark: Micros): Promise<void> {
    await runSql(this.pool, 'recordAck', [clientId, watermark, this.clock()]);
  }

  async acceptNonce(clientId: string, nonce: string, timestampSeconds: number): Promise<NonceCheck> {
    const res = await runSql(this.pool, 'acceptNonce', [clientId, nonce, timestampSeconds]);
    return res.rowCount === 1 ? { ok: true } : { ok: false, reason: 'replayed' };
  }

  // watermarks

  async openSync(homeId: string, w: Micros | null, db: Queryable = this.pool): Promise<OpenedSync> {
    const row = rowOf(OpenSyncRowSchema, (await runSql(db, 'openSync', [homeId, w])).rows, 'ib_open_sync');
    if (row === undefined || row.status === 'no_home') throw new GatewayError('STORE', `home ${JSON.stringify(homeId)} does not exist`);
    if (row.status !== 'ok') return { ok: false, reason: row.status };
    if (row.h === null) throw new GatewayError('STORE', 'ib_open_sync returned no watermark');
    return { ok: true, h: row.h };
  }

  async issuedBound(homeId: string): Promise<Micros> {
    return rowOf(ValueRowSchema, (await runSql(this.pool, 'homeClock', [homeId])).rows, 'homes')?.value ?? 0;
  }

  /** Issues max(clock, now) to the home, like a sync's H: close to real time and a valid watermark. */
  async serverTimeFor(homeId: string): Promise<Micros> {
    const opened = await this.openSync(homeId, null);
    if (!opened.ok) throw new GatewayError('STORE', 'issuing a watermark without last_sync cannot be refused');
    return opened.h;
  }

  async nowMicros(): Promise<Micros> {
    return rowOf(ValueRowSchema, (await runSql(this.pool, 'now')).rows, 'now')?.value ?? 0;
  }

  // delta and push

  /**
   * One transaction: ib_open_sync takes the home's row lock and issues H, and the page is read while the lock is held
   * (a new statement, a new snapshot: every push that locked the home before has committed, none can commit after).
   */
  openPage(q: OpenPageQuery): Promise<OpenedPage> {
    return inTransaction(this.pool, async (client): Promise<OpenedPage> => {
      const opened = await this.openSync(q.homeId, q.w, client);
      if (!opened.ok) return opened;
      const page = await this.page({ ...q, h: opened.h, after: null }, client);
      // Still under the home's lock: the sums are those of exactly the rows with seq <= H.
      return { ok: true, h: opened.h, page, ...(q.digest === true ? { digest: await readDigest(client, q.homeId) } : {}) };
    });
  }

  async page(q: PullQuery, db: Queryable = this.pool): Promise<DeltaPage> {
    const lo = (p: number): Micros | null => {
      if ((q.typesMask & (1 << p)) === 0) return null;
      const start = q.after?.p ?? 0;
      if (p < start) return null;
      return Math.max(q.w ?? 0, q.after !== null && p === q.after.p ? q.after.s : 0);
    };
    const res = await runSql(db, 'page', [
      q.homeId,
      lo(0),
      lo(1),
      lo(2),
      q.h,
      q.includeDeleted,
      q.w === null ? null : q.clientId, // a full sync includes the client's own writes
      q.limit + 1,
      q.w ?? 0, // … and an incremental one the rows another client's attribute changed since w (foreign_seq)
      q.buckets === undefined ? null : [...q.buckets], // a digest repair reads only these buckets
    ]);
    const rows = rowsOf(PageRowSchema, res.rows, 'entities page');
    const first = rows[0];
    if (first === undefined) throw new GatewayError('STORE', `home ${JSON.stringify(q.homeId)} does not exist`);
    const changes: string[] = [];
    let last: { p: number; s: Micros } | null = null;
    let kept = 0;
    for (const r of rows) {
      if (r.entity_type === null || r.seq === null || r.priority === null) continue;
      if (kept === q.limit) break;
      kept += 1;
      last = { p: r.priority, s: r.seq };
      const row = {
        entity_type: r.entity_type,
        entity_id: r.entity_id ?? '',
        data: r.data ?? '{}',
        updated_at: r.updated_at ?? 0,
        sync_id: r.sync_id ?? '',
        deleted: r.deleted === true ? 1 : 0,
        seq: r.seq,
        created_seq: r.created_seq ?? 0,
        attrs: r.attrs,
        claimed_at: r.claimed_at,
      };
      const partial = q.partial === true && q.w !== null ? partialJson(row, q.w, q.clientId) : undefined;
      if (partial === null) continue; // only this client's own attributes are newer: nothing to send
      changes.push(partial ?? changeJson(row, q.w));
    }
    const more = rows.filter((r) => r.seq !== null).length > q.limit;
    return { changes, more, last, purgedThrough: first.purged_through };
  }

  async conflicts(clientId: string, w: Micros | null, h: Micros, limit: number): Promise<string[]> {
    const res = await runSql(this.pool, 'conflicts', [clientId, w ?? 0, h, limit]);
    return rowsOf(EntryRowSchema, res.rows, 'conflicts').map((r) => r.entry).reverse();
  }

  applyPush(ctx: PushContext, changes: readonly WirePushChange[]): Promise<AppliedPush> {
    return applyPushPg(this.pool, ctx, changes, {
      clock: this.clock,
      notifyPayload: (notice) => noticePayload(notice, this.instanceId),
    });
  }

  async history(q: HistoryQuery): Promise<HistoryPage> {
    const before = q.before ?? Number.MAX_SAFE_INTEGER;
    const res = await runSql(this.pool, 'history', [q.homeId, q.entityType, q.entityId, before, q.limit + 1]);
    return historyPage(res.rows, q.limit);
  }

  digest(homeId: string): Promise<HomeDigest> {
    return readDigest(this.pool, homeId);
  }

  // jobs and tools

  maintain(options: MaintenanceOptions): Promise<MaintenanceReport | undefined> {
    return maintainPg(this.pool, options, this.clock);
  }

  purgeTombstones(retentionSeconds: number): Promise<number> {
    return purgeTombstonesPg(this.pool, retentionSeconds, this.clock);
  }

  async entities(homeId: string): Promise<StoredEntity[]> {
    const rows = rowsOf(EntityRowSchema, (await runSql(this.pool, 'entities', [homeId])).rows, 'entities');
    return rows.map((r) => ({
      entity_type: r.entity_type,
      entity_id: r.entity_id,
      data: DataSchema.parse(JSON.parse(r.data)),
      updated_at: r.updated_at,
      sync_id: r.sync_id,
      deleted: r.deleted,
      seq: r.seq,
      origin_client: r.origin_client,
    }));
  }

  async applicationCount(clientId: string, clientSyncId: string): Promise<number> {
    return rowOf(ValueRowSchema, (await runSql(this.pool, 'applications', [clientId, clientSyncId])).rows, 'push_results')?.value ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * An app-side session with a sync server, as a phone app would hold one: the real transport (bearer token, HMAC on
 * both directions, gzip), a token kept in memory and renewed once when the server says it expired or does not know
 * it, and a server-corrected clock (docs/architecture.md §Time) to stamp what the app writes.
 */
import { SyncHttpError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  parseTimestamp,
  HealthResponseSchema,
  HistoryResponseSchema,
  SyncAckResultSchema,
  SyncResultSchema,
  TokenResponseSchema,
  type HistoryResponse,
  type SyncRequest,
  type SyncResult,
  type WirePushChange,
} from '../protocol/index.js';
import { AUTH_TOKEN_PATH } from '../sync/auth.js';
import { HEALTH_PATH } from '../sync/client.js';
import { ServerClock } from '../sync/clock.js';
import { fetchDelta, probeLiveWait, type FetchedDelta, type LiveSupport } from '../sync/live.js';
import { SyncTransport, type CallResult, type CallSpec } from '../sync/transport.js';

export interface AppSessionOptions {
  readonly serverUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly logger: Logger;
}

export class AppSession {
  readonly clientId: string;
  readonly clock: ServerClock;
  private readonly transport: SyncTransport;
  private readonly secret: string;
  private token: string | undefined;

  constructor(options: AppSessionOptions) {
    this.clientId = options.clientId;
    this.secret = options.clientSecret;
    this.clock = new ServerClock({ logger: options.logger });
    this.transport = new SyncTransport({
      serverUrl: options.serverUrl,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      logger: options.logger,
      timestampSeconds: () => Math.floor(this.clock.nowMs() / 1000),
    });
  }

  /** A bearer call; a 401 UNAUTHORIZED / AUTH_EXPIRED logs in again and retries once. */
  readonly call = async <T>(spec: CallSpec<T>): Promise<CallResult<T>> => {
    if (spec.signed === false) return this.transport.call(spec);
    const first = await this.login(false);
    try {
      return await this.transport.call({ ...spec, bearer: first });
    } catch (err) {
      if (!(err instanceof SyncHttpError) || (err.code !== 'AUTH_EXPIRED' && err.code !== 'UNAUTHORIZED')) throw err;
      return this.transport.call({ ...spec, bearer: await this.login(true) });
    }
  };

  /** Whether the server merges partial entity_states (health `capabilities.partial_state`); false without health. */
  async mergesPartialStates(): Promise<boolean> {
    if (this.partialStates !== undefined) return this.partialStates; // asked once per session
    try {
      const { value } = await this.call({ method: 'GET', path: HEALTH_PATH, schema: HealthResponseSchema, signed: false });
      this.partialStates = value.capabilities?.partial_state !== undefined;
    } catch (err) {
      if (!(err instanceof SyncHttpError) || (err.status !== 404 && err.status !== 405)) throw err;
      this.partialStates = false;
    }
    return this.partialStates;
  }

  private partialStates: boolean | undefined;

  probeLive(): Promise<LiveSupport | undefined> {
    return probeLiveWait(this.call);
  }

  /** A whole delta (every page); `waitSeconds` > 0 asks the first page to be held (a live wait). */
  async delta(request: Omit<SyncRequest, 'type' | 'client_id'>, waitSeconds = 0): Promise<FetchedDelta> {
    const fetched = await fetchDelta(this.call, { type: 'sync_request', client_id: this.clientId, ...request }, waitSeconds);
    // A held answer's round trip says nothing about the offset; a prompt one is a good sample.
    if (fetched.live === undefined || fetched.live.waited_ms === 0) {
      const serverMicros = parseTimestamp(fetched.serverTime);
      if (serverMicros !== undefined) this.clock.observe(serverMicros, fetched.sentAtMs, fetched.receivedAtMs);
    }
    return fetched;
  }

  async push(changes: readonly WirePushChange[]): Promise<SyncResult> {
    const body = { type: 'sync_push', client_id: this.clientId, changes };
    return (await this.call({ method: 'POST', path: '/api/v1/sync/push', body, schema: SyncResultSchema })).value;
  }

  /**
   * One page of an entity's sync history (`GET /api/v1/history`, an extension: docs/protocol.md §Sync history),
   * newest first; `before` is the previous page's `next_before`.
   */
  async history(entityId: string, options: { entityType?: string; limit?: number; before?: number } = {}): Promise<HistoryResponse> {
    const query = new URLSearchParams({ entity_id: entityId });
    if (options.entityType !== undefined) query.set('entity_type', options.entityType);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.before !== undefined) query.set('before', String(options.before));
    return (await this.call({ method: 'GET', path: `/api/v1/history?${query.toString()}`, schema: HistoryResponseSchema })).value;
  }

  /** seed §5: tells the server this client has seen everything up to `serverTime` (lets it purge tombstones). */
  async ack(serverTime: string): Promise<void> {
    const body = { type: 'sync_ack', client_id: this.clientId, sync_completed_at: serverTime };
    await this.call({ method: 'POST', path: '/api/v1/sync/ack', body, schema: SyncAckResultSchema });
  }

  /** Aborts what is in flight (a held wait too) and closes the connections. */
  async close(): Promise<void> {
    await this.transport.destroy();
  }

  private async login(renew: boolean): Promise<string> {
    if (this.token !== undefined && !renew) return this.token;
    const { value } = await this.transport.call({
      method: 'POST',
      path: AUTH_TOKEN_PATH,
      body: { client_id: this.clientId, client_secret: this.secret },
      schema: TokenResponseSchema,
    });
    this.token = value.access_token;
    return this.token;
  }
}

/**
 * The server's endpoints and what each accepts as a body (docs/protocol.md §Endpoints, §Limits). The auth
 * endpoints answer anyone, so they take small uncompressed bodies only; sync_request and sync_ack carry a few hundred
 * bytes; only sync_push may be large, up to `maxBodyBytes` on the wire and `maxInflatedBytes` inflated. Every body is
 * also bounded in JSON nesting depth and value count before it is parsed, so what JSON.parse builds stays a small
 * multiple of the byte caps.
 */
import type { ServerConfig } from './config.js';
import type { Reply } from './http/io.js';
import type { ClientRecord } from './store/index.js';
import type { BodyPolicy } from './http/decode.js';
import {
  handleRefresh,
  handleSyncAck,
  handleSyncPush,
  handleSyncRequest,
  handleToken,
  type AuthHandler,
  type HandlerDeps,
  type SyncHandler,
} from './handlers.js';
import { handleHistory, HISTORY_PATH } from './history-endpoint.js';

/** Body cap of the unauthenticated auth endpoints (a token request is a few hundred bytes). */
export const AUTH_MAX_BODY_BYTES = 8 * 1024;
/** Body cap, raw and inflated, of sync_request and sync_ack. */
export const SMALL_MAX_BODY_BYTES = 64 * 1024;
/** Deepest JSON nesting of any body (a pushed change's `data` may nest MAX_DATA_DEPTH levels below depth 3). */
export const MAX_BODY_DEPTH = 64;
/**
 * JSON values allowed per pushed change, on average over a full push (a zigbee2mqtt light state is about 40 values, a
 * state of 40 attributes about 95): 256 000 values for 1000 changes, which JSON.parse turns into about 8 MB.
 */
export const PUSH_VALUES_PER_CHANGE = 256;

export type EndpointName = 'sync_request' | 'sync_push' | 'sync_ack' | 'auth_token' | 'auth_refresh' | 'health' | 'history';

/** A signed GET of the sync API (extension): the request URL is its input; it has no body. */
export type QueryHandler = (deps: HandlerDeps, client: ClientRecord, url: string) => Promise<Reply>;

interface EndpointBase {
  readonly name: EndpointName;
  readonly method: 'GET' | 'POST';
}

export type Endpoint =
  | (EndpointBase & {
      readonly kind: 'sync';
      readonly handler: SyncHandler;
      readonly body: BodyPolicy;
      /** The request may be held as a live wait (docs/protocol.md §Live waits). */
      readonly live?: true;
    })
  | (EndpointBase & { readonly kind: 'auth'; readonly handler: AuthHandler; readonly body: BodyPolicy })
  | (EndpointBase & { readonly kind: 'health' })
  | (EndpointBase & { readonly kind: 'query'; readonly handler: QueryHandler });

/** An endpoint that takes a body (every POST). */
export type BodyEndpoint = Exclude<Endpoint, { kind: 'health' } | { kind: 'query' }>;

/** The endpoint table for `config`, keyed by path. */
export function endpointTable(config: ServerConfig): ReadonlyMap<string, Endpoint> {
  const auth: BodyPolicy = {
    maxRawBytes: AUTH_MAX_BODY_BYTES,
    gzip: false,
    maxInflatedBytes: AUTH_MAX_BODY_BYTES,
    json: { maxDepth: 8, maxValues: 256 },
  };
  const small: BodyPolicy = {
    maxRawBytes: SMALL_MAX_BODY_BYTES,
    gzip: true,
    maxInflatedBytes: SMALL_MAX_BODY_BYTES,
    json: { maxDepth: MAX_BODY_DEPTH, maxValues: 4096 },
  };
  const push: BodyPolicy = {
    maxRawBytes: config.maxBodyBytes,
    gzip: true,
    maxInflatedBytes: config.maxInflatedBytes,
    json: { maxDepth: MAX_BODY_DEPTH, maxValues: config.maxPushChanges * PUSH_VALUES_PER_CHANGE + 64 },
  };
  return new Map<string, Endpoint>([
    ['/api/v1/sync/request', { name: 'sync_request', method: 'POST', kind: 'sync', handler: handleSyncRequest, body: small, live: true }],
    ['/api/v1/sync/push', { name: 'sync_push', method: 'POST', kind: 'sync', handler: handleSyncPush, body: push }],
    ['/api/v1/sync/ack', { name: 'sync_ack', method: 'POST', kind: 'sync', handler: handleSyncAck, body: small }],
    ['/api/v1/auth/token', { name: 'auth_token', method: 'POST', kind: 'auth', handler: handleToken, body: auth }],
    ['/api/v1/auth/refresh', { name: 'auth_refresh', method: 'POST', kind: 'auth', handler: handleRefresh, body: auth }],
    ['/api/v1/health', { name: 'health', method: 'GET', kind: 'health' }],
    [HISTORY_PATH, { name: 'history', method: 'GET', kind: 'query', handler: handleHistory }],
  ]);
}

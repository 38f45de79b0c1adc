/**
 * A small test client for the sync server: raw requests with undici, optional gzip and HMAC signing, and helpers
 * for the five phases. Tests use it to drive the real server on port 0.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import {
  newNonce,
  signRequest,
  verifyResponse,
  type SyncDelta,
  type SyncResult,
  type TokenResponse,
  type WirePushChange,
} from '../../src/protocol/index.js';
import type { ClientCredentials } from '../../src/server/index.js';

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Body bytes as received (possibly gzipped). */
  readonly raw: Buffer;
  /** Decoded JSON body. */
  readonly json: any;
}

export interface SendOptions {
  readonly method?: string;
  readonly token?: string;
  readonly gzip?: boolean;
  readonly acceptGzip?: boolean;
  /** Sign with this credential. */
  readonly sign?: ClientCredentials;
  readonly signAt?: number; // seconds
  readonly nonce?: string;
  readonly headers?: Record<string, string>;
  /** Raw body bytes instead of JSON.stringify(body). */
  readonly rawBody?: Buffer | string;
  /** Aborts the request (a client that goes away while its live wait is held). */
  readonly signal?: AbortSignal;
}

export async function send(url: string, path: string, body: unknown, opts: SendOptions = {}): Promise<RawResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  let bytes: Buffer | undefined;
  if (opts.rawBody !== undefined) bytes = Buffer.from(opts.rawBody);
  else if (body !== undefined) bytes = Buffer.from(JSON.stringify(body));
  if (bytes !== undefined && opts.gzip) {
    bytes = gzipSync(bytes);
    headers['content-encoding'] = 'gzip';
  }
  if (opts.acceptGzip) headers['accept-encoding'] = 'gzip';
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.sign) {
    Object.assign(
      headers,
      signRequest({
        secret: opts.sign.client_secret,
        method: opts.method ?? 'POST',
        path,
        clientId: opts.sign.client_id,
        body: bytes ?? Buffer.alloc(0),
        timestampSeconds: opts.signAt ?? Math.floor(Date.now() / 1000),
        nonce: opts.nonce ?? newNonce(),
      }),
    );
  }
  Object.assign(headers, opts.headers);
  const res = await request(`${url}${path}`, { method: (opts.method ?? 'POST') as 'POST', headers, body: bytes, signal: opts.signal });
  const raw = Buffer.from(await res.body.arrayBuffer());
  const plain = res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, raw, json };
}

/** Checks a signed response against the credential and request nonce. */
export function responseSignatureOk(res: RawResponse, creds: ClientCredentials, nonce: string): boolean {
  const h = (name: string): string | undefined => {
    const v = res.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  return verifyResponse({
    secret: creds.client_secret,
    status: res.status,
    requestNonce: nonce,
    body: res.raw,
    headers: { timestamp: h('x-inbetweenies-timestamp'), signature: h('x-inbetweenies-signature') },
  }).ok;
}

/** A logged-in client: credential + access token. */
export class TestClient {
  token = '';
  refreshToken = '';
  constructor(
    readonly url: string,
    readonly creds: ClientCredentials,
    readonly defaults: SendOptions = {},
  ) {}

  async login(): Promise<TokenResponse> {
    const res = await send(this.url, '/api/v1/auth/token', {
      client_id: this.creds.client_id,
      client_secret: this.creds.client_secret,
    }, this.signOpts());
    if (res.status !== 200) throw new Error(`login failed ${res.status} ${JSON.stringify(res.json)}`);
    this.token = res.json.access_token;
    this.refreshToken = res.json.refresh_token;
    return res.json as TokenResponse;
  }

  private signOpts(): SendOptions {
    return this.defaults.sign ? { sign: this.creds } : {};
  }

  post(path: string, body: unknown, opts: SendOptions = {}): Promise<RawResponse> {
    return send(this.url, path, body, { ...this.defaults, token: this.token, ...opts });
  }

  syncRequest(extra: Record<string, unknown> = {}, opts: SendOptions = {}): Promise<RawResponse> {
    return this.post('/api/v1/sync/request', { type: 'sync_request', client_id: this.creds.client_id, ...extra }, opts);
  }

  push(changes: Partial<WirePushChange>[] | unknown[], opts: SendOptions = {}): Promise<RawResponse> {
    return this.post('/api/v1/sync/push', { type: 'sync_push', client_id: this.creds.client_id, changes }, opts);
  }

  ack(serverTime: string, opts: SendOptions = {}): Promise<RawResponse> {
    return this.post('/api/v1/sync/ack', {
      type: 'sync_ack',
      client_id: this.creds.client_id,
      sync_completed_at: serverTime,
    }, opts);
  }

  /** Pulls every page of a delta; returns all changes, the pages and the watermark. */
  async pullAll(lastSync: string | null, extra: Record<string, unknown> = {}): Promise<{
    changes: SyncDelta['changes'];
    conflicts: SyncDelta['conflicts'];
    pages: number;
    serverTime: string;
  }> {
    const changes: SyncDelta['changes'] = [];
    const conflicts: SyncDelta['conflicts'] = [];
    let cursor: string | null = null;
    let pages = 0;
    let serverTime = '';
    for (;;) {
      const res = await this.syncRequest({ last_sync: lastSync, ...extra, ...(cursor ? { cursor } : {}) });
      if (res.status !== 200) throw new Error(`sync_request failed ${res.status} ${JSON.stringify(res.json)}`);
      const delta = res.json as SyncDelta;
      pages++;
      changes.push(...delta.changes);
      conflicts.push(...delta.conflicts);
      if (serverTime && serverTime !== delta.server_time) throw new Error('server_time changed between pages');
      serverTime = delta.server_time;
      if (!delta.more) break;
      cursor = delta.cursor ?? null;
    }
    return { changes, conflicts, pages, serverTime };
  }

  async pushOk(changes: unknown[]): Promise<SyncResult> {
    const res = await this.push(changes);
    if (res.status !== 200) throw new Error(`push failed ${res.status} ${JSON.stringify(res.json)}`);
    return res.json as SyncResult;
  }
}

let counter = 0;
/** A device change with a unique client_sync_id. */
export function deviceChange(id: string, name: string, updatedAt: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  counter++;
  return {
    entity_type: 'device',
    entity_id: id,
    operation: 'update',
    data: { name, ...extra },
    updated_at: updatedAt,
    client_sync_id: `csid-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`,
  };
}

export function stateChange(id: string, state: Record<string, unknown>, updatedAt: string): Record<string, unknown> {
  counter++;
  return {
    entity_type: 'entity_state',
    entity_id: id,
    operation: 'update',
    data: { device_id: id.replace(/^state-/, 'dev-'), state },
    updated_at: updatedAt,
    client_sync_id: `csid-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`,
  };
}

export function isoAt(ms: number): string {
  return new Date(ms).toISOString();
}

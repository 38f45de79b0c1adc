/**
 * Another client of a home (a phone app, say) that edits entities on the server directly with the real transport
 * (HMAC, gzip, bearer token): the demo's way to make a server-side change, and the tests' too.
 */
import type { Logger } from '../log.js';
import { formatTimestamp, SyncResultSchema, TokenResponseSchema, type SyncResult, type WirePushChange } from '../protocol/index.js';
import { SyncTransport } from '../sync/transport.js';

export interface AppCredentials {
  readonly client_id: string;
  readonly client_secret: string;
}

export type AppChange = Omit<WirePushChange, 'client_sync_id'> & { client_sync_id?: string };

export interface AppClient {
  push(changes: readonly AppChange[]): Promise<SyncResult>;
  /** Sets a device's state attributes on the server, stamped `updatedAtMs` (default now). */
  setState(deviceId: string, state: Record<string, unknown>, updatedAtMs?: number): Promise<SyncResult>;
  close(): Promise<void>;
}

export async function connectApp(url: string, creds: AppCredentials, logger: Logger): Promise<AppClient> {
  const transport = new SyncTransport({ serverUrl: url, clientId: creds.client_id, clientSecret: creds.client_secret, logger });
  const token = await transport.call({
    method: 'POST',
    path: '/api/v1/auth/token',
    body: { client_id: creds.client_id, client_secret: creds.client_secret },
    schema: TokenResponseSchema,
  });
  let n = 0;
  const push: AppClient['push'] = async (changes) => {
    const body = {
      type: 'sync_push',
      client_id: creds.client_id,
      changes: changes.map((c) => ({ ...c, client_sync_id: c.client_sync_id ?? `app-${Date.now()}-${(n += 1)}` })),
    };
    const res = await transport.call({ method: 'POST', path: '/api/v1/sync/push', body, schema: SyncResultSchema, bearer: token.value.access_token });
    return res.value;
  };
  return {
    push,
    setState: (deviceId, state, updatedAtMs = Date.now()) =>
      push([
        {
          entity_type: 'entity_state',
          entity_id: deviceId,
          operation: 'update',
          data: { device_id: deviceId, state },
          updated_at: formatTimestamp(updatedAtMs * 1000),
        },
      ]),
    close: () => transport.close(),
  };
}

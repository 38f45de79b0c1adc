/**
 * Another client of the soak's home (a phone app): pushes its own entity states straight to the server, and now and
 * then a stale edit (an hour old) of a gateway device that last-write-wins must reject (seed §Conflict Resolution),
 * so the gateway's acknowledged states must survive concurrent writers.
 */
import { silentLogger } from '../log.js';
import { formatTimestamp, SyncResultSchema, TokenResponseSchema, type WirePushChange } from '../protocol/index.js';
import { SyncTransport } from '../sync/index.js';

export interface AppWriterOptions {
  readonly serverUrl: () => string;
  readonly clientId: string;
  readonly clientSecret: string;
}

export class AppWriter {
  writes = 0;
  failures = 0;
  #n = 0;
  readonly #options: AppWriterOptions;

  constructor(options: AppWriterOptions) {
    this.#options = options;
  }

  /** One push of `entityId`'s state at `updatedAtMs`; failures (server restarting) are counted, not thrown. */
  async write(entityId: string, state: Record<string, unknown>, updatedAtMs: number): Promise<void> {
    const { clientId, clientSecret } = this.#options;
    const transport = new SyncTransport({ serverUrl: this.#options.serverUrl(), clientId, clientSecret, logger: silentLogger() });
    try {
      const token = await transport.call({ method: 'POST', path: '/api/v1/auth/token', body: { client_id: clientId, client_secret: clientSecret }, schema: TokenResponseSchema });
      this.#n += 1;
      const change: WirePushChange = {
        entity_type: 'entity_state',
        entity_id: entityId,
        operation: 'update',
        data: { device_id: entityId, state },
        updated_at: formatTimestamp(updatedAtMs * 1000),
        client_sync_id: `app-${process.pid}-${Date.now()}-${this.#n}`,
      };
      const body = { type: 'sync_push' as const, client_id: clientId, changes: [change] };
      await transport.call({ method: 'POST', path: '/api/v1/sync/push', body, schema: SyncResultSchema, bearer: token.value.access_token });
      this.writes += 1;
    } catch {
      this.failures += 1;
    } finally {
      await transport.destroy();
    }
  }
}

/**
 * Bearer tokens (seed §Authentication: "Bearer token in Authorization header", "Token refresh before expiry", "Secure
 * token storage on client"). Tokens come from POST /api/v1/auth/token with the client credentials, are refreshed with
 * POST /api/v1/auth/refresh before expiry (when less than `refreshAtFraction` of the lifetime is left), and are
 * persisted in sync_state so a restart does not re-authenticate. A 401 AUTH_EXPIRED refreshes once and retries the
 * request once; a failed refresh falls back to the credentials.
 */
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { TokenResponseSchema, type TokenResponse } from '../protocol/index.js';
import type { SyncState, TokensState } from '../store/sync-state.js';
import type { SyncTransport } from './transport.js';

export interface TokenManagerOptions {
  readonly transport: SyncTransport;
  readonly state: SyncState;
  readonly logger: Logger;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Refresh when less than this fraction of the access token's lifetime is left (default 0.2). */
  readonly refreshAtFraction?: number;
  readonly now?: () => number;
}

export const AUTH_TOKEN_PATH = '/api/v1/auth/token';
export const AUTH_REFRESH_PATH = '/api/v1/auth/refresh';

export class TokenManager {
  readonly #o: TokenManagerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #fraction: number;
  #inflight: Promise<string> | undefined;

  constructor(options: TokenManagerOptions) {
    const fraction = options.refreshAtFraction ?? 0.2;
    if (!(fraction > 0 && fraction < 1)) {
      throw new GatewayError('CONFIG_INVALID', `refreshAtFraction: expected a number in (0, 1), given ${String(fraction)}`);
    }
    this.#o = options;
    this.#fraction = fraction;
    this.#log = options.logger.child({ module: 'sync-auth' });
    this.#now = options.now ?? Date.now;
  }

  /** A valid access token: the stored one, refreshed when close to expiry, or a new one from the credentials. */
  async accessToken(): Promise<string> {
    const tokens = this.#o.state.get('tokens');
    if (tokens !== undefined && !this.#needsRefresh(tokens)) return tokens.access_token;
    return this.#single(() => (tokens === undefined ? this.#login() : this.#refreshOrLogin(tokens)));
  }

  /** After a 401 AUTH_EXPIRED: refresh (or log in again) now, whatever the local clock thinks of the expiry. */
  async renew(): Promise<string> {
    const tokens = this.#o.state.get('tokens');
    return this.#single(() => (tokens === undefined ? this.#login() : this.#refreshOrLogin(tokens)));
  }

  /** Forgets the stored tokens (e.g. after UNAUTHORIZED: they were revoked or the server lost them). */
  forget(): void {
    void this.#o.state.delete('tokens');
  }

  #needsRefresh(tokens: TokensState): boolean {
    const lifetime = tokens.access_expires_at - tokens.access_issued_at;
    return tokens.access_expires_at - this.#now() < lifetime * this.#fraction;
  }

  async #single(run: () => Promise<string>): Promise<string> {
    if (this.#inflight === undefined) {
      this.#inflight = run().finally(() => {
        this.#inflight = undefined;
      });
    }
    return this.#inflight;
  }

  async #refreshOrLogin(tokens: TokensState): Promise<string> {
    if (tokens.refresh_expires_at === null || tokens.refresh_expires_at > this.#now()) {
      try {
        const { value, sentAtMs } = await this.#o.transport.call({
          method: 'POST',
          path: AUTH_REFRESH_PATH,
          body: { refresh_token: tokens.refresh_token },
          schema: TokenResponseSchema,
        });
        this.#log.debug('access token refreshed');
        return this.#store(value, sentAtMs);
      } catch (err) {
        if (!(err instanceof GatewayError) || !isAuthFailure(err)) throw err;
        this.#log.info({ code: err.code }, 'token refresh refused; logging in with the client credentials');
      }
    }
    return this.#login();
  }

  async #login(): Promise<string> {
    const { value, sentAtMs } = await this.#o.transport.call({
      method: 'POST',
      path: AUTH_TOKEN_PATH,
      body: { client_id: this.#o.clientId, client_secret: this.#o.clientSecret },
      schema: TokenResponseSchema,
    });
    this.#log.info({ expiresIn: value.expires_in }, 'authenticated with the client credentials');
    return this.#store(value, sentAtMs);
  }

  /** Lifetimes are counted from when the request was sent, so the local expiry is never later than the server's. */
  #store(value: TokenResponse, sentAtMs: number): string {
    void this.#o.state.set('tokens', {
      access_token: value.access_token,
      access_issued_at: sentAtMs,
      access_expires_at: sentAtMs + value.expires_in * 1000,
      refresh_token: value.refresh_token,
      refresh_expires_at: value.refresh_expires_in === undefined ? null : sentAtMs + value.refresh_expires_in * 1000,
    });
    return value.access_token;
  }
}

/** Errors that mean "these tokens are no good" (as opposed to the server being unreachable). */
export function isAuthFailure(err: GatewayError): boolean {
  return err.code === 'AUTH_EXPIRED' || err.code === 'UNAUTHORIZED' || err.code === 'FORBIDDEN' || err.code === 'BAD_REQUEST';
}

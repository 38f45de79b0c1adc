/**
 * Who sent a request (seed §Authentication, §Data Integrity): the bearer token of the sync endpoints, and the HMAC
 * signature (docs/protocol.md §HMAC). An unknown client id is checked against a random dummy secret, exactly as a
 * known one, so the answer (and its timing) is the same as for a wrong secret: client ids cannot be confirmed.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ProtocolError } from '../../errors.js';
import { HEADER_CLIENT_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, verifyRequest } from '../../protocol/index.js';
import { hashToken, type ClientRecord } from '../store/accounts.js';
import type { SyncStore } from '../store/contract.js';

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export interface Bearer {
  readonly client: ClientRecord;
  /** SHA-256 of the token: the key of the unsigned-request bucket. */
  readonly tokenHash: string;
}

export interface Signed {
  readonly client: ClientRecord;
  readonly nonce: string;
}

export interface AuthenticatorOptions {
  /** Tokens, clients and nonces: shared by every instance on PostgreSQL (a nonce used on one is a replay on all). */
  readonly store: SyncStore;
  readonly windowSeconds: number;
  readonly clock: () => number;
}

export class Authenticator {
  private readonly o: AuthenticatorOptions;
  private readonly dummySecret = randomBytes(32).toString('hex');

  constructor(options: AuthenticatorOptions) {
    this.o = options;
  }

  /** `Authorization: Bearer <access token>` → its client (UNAUTHORIZED / AUTH_EXPIRED). */
  async bearer(req: IncomingMessage): Promise<Bearer> {
    const auth = header(req, 'authorization') ?? '';
    const match = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,512})$/i.exec(auth.trim());
    if (match === null || match[1] === undefined) {
      throw new ProtocolError('UNAUTHORIZED', 'missing or malformed Authorization: Bearer token', { reason: 'no_token' });
    }
    const lookup = await this.o.store.lookupToken(match[1], 'access');
    if (lookup.ok) return { client: lookup.client, tokenHash: hashToken(match[1]) };
    throw lookup.reason === 'expired'
      ? new ProtocolError('AUTH_EXPIRED', 'access token expired: refresh or re-authenticate', { reason: 'token_expired' })
      : new ProtocolError('UNAUTHORIZED', 'unknown access token', { reason: 'unknown_token' });
  }

  /** Whether the request carries a signature (then it is verified, whatever `hmac.required` says). */
  isSigned(req: IncomingMessage): boolean {
    return header(req, HEADER_SIGNATURE) !== undefined;
  }

  /**
   * Verifies a signed request over its body bytes. `known` is the bearer token's client on sync endpoints; on auth
   * endpoints the key is the secret of the client named by x-inbetweenies-client-id.
   */
  async verify(req: IncomingMessage, raw: Buffer, known: ClientRecord | undefined): Promise<Signed> {
    const named = header(req, HEADER_CLIENT_ID);
    let client = known;
    if (known !== undefined) {
      if (named !== undefined && named !== known.clientId) {
        throw new ProtocolError('BAD_SIGNATURE', `${HEADER_CLIENT_ID} does not match the token's client`, { reason: 'client_id' });
      }
    } else if (named === undefined) {
      throw new ProtocolError('BAD_SIGNATURE', `request signature rejected: missing ${HEADER_CLIENT_ID}`, { reason: 'missing' });
    } else {
      client = await this.o.store.getClient(named);
    }
    const nowSeconds = Math.floor(this.o.clock() / 1000);
    const headers = { timestamp: header(req, HEADER_TIMESTAMP), nonce: header(req, HEADER_NONCE), signature: header(req, HEADER_SIGNATURE) };
    const check = verifyRequest({
      secret: client?.secret ?? this.dummySecret,
      method: req.method ?? 'POST',
      path: req.url ?? '/',
      clientId: client?.clientId ?? named ?? '',
      body: raw,
      headers,
      nowSeconds,
      windowSeconds: this.o.windowSeconds,
    });
    if (!check.ok) throw new ProtocolError('BAD_SIGNATURE', `request signature rejected: ${check.reason}`, { reason: check.reason });
    // A MAC can only verify under a real secret, so `client` is known here; the guard keeps the types honest.
    if (client === undefined) throw new ProtocolError('BAD_SIGNATURE', 'request signature rejected: mismatch', { reason: 'mismatch' });
    const nonce = headers.nonce ?? '';
    const fresh = await this.o.store.acceptNonce(client.clientId, nonce, Number(headers.timestamp), nowSeconds);
    if (!fresh.ok) throw new ProtocolError('BAD_SIGNATURE', `request signature rejected: ${fresh.reason}`, { reason: fresh.reason });
    return { client, nonce };
  }
}

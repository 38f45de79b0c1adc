/**
 * Homes, clients and tokens (seed §Authentication; docs/protocol.md §Authentication). A client belongs to exactly one
 * home; its secret is stored as-is because it keys the HMAC. Tokens are random 32 bytes (base64url) and only their
 * SHA-256 is stored.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { relaxedWrite, type ServerDb } from '../db.js';

export interface ClientRecord {
  readonly clientId: string;
  readonly secret: string;
  readonly homeId: string;
  readonly lastAckWatermark: number | null;
  readonly lastAckAt: number | null;
}

export interface ClientCredentials {
  readonly client_id: string;
  readonly client_secret: string;
  readonly home_id: string;
}

export interface IssuedTokens {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
}

export type TokenLookup =
  | { ok: true; client: ClientRecord }
  | { ok: false; reason: 'unknown' | 'expired' };

export interface ClientRow {
  client_id: string;
  secret: string;
  home_id: string;
  last_ack_watermark: number | null;
  last_ack_at: number | null;
}

interface TokenRow {
  client_id: string;
  kind: string;
  expires_at: number;
}

export function toClient(row: ClientRow): ClientRecord {
  return {
    clientId: row.client_id,
    secret: row.secret,
    homeId: row.home_id,
    lastAckWatermark: row.last_ack_watermark,
    lastAckAt: row.last_ack_at,
  };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time string comparison (different lengths compare unequal without leaking where they differ). */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a, 'utf8').digest();
  const right = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(left, right) && a.length === b.length;
}

export class AccountStore {
  private readonly db: ServerDb;
  private readonly clock: () => number;
  private readonly stmts;

  constructor(options: { db: ServerDb; clock: () => number }) {
    this.db = options.db;
    this.clock = options.clock;
    const db = this.db;
    this.stmts = {
      insertHome: db.prepare('INSERT INTO homes (home_id, created_at) VALUES (?, ?) ON CONFLICT(home_id) DO NOTHING'),
      insertClient: db.prepare('INSERT INTO clients (client_id, secret, home_id, created_at) VALUES (?, ?, ?, ?)'),
      getClient: db.prepare('SELECT * FROM clients WHERE client_id = ?'),
      insertToken: db.prepare('INSERT INTO tokens (token_hash, kind, client_id, expires_at, family) VALUES (?, ?, ?, ?, ?)'),
      getToken: db.prepare('SELECT client_id, kind, expires_at FROM tokens WHERE token_hash = ?'),
      familyOf: db.prepare('SELECT family FROM tokens WHERE token_hash = ?').pluck(),
      deleteToken: db.prepare('DELETE FROM tokens WHERE token_hash = ?'),
      deleteFamily: db.prepare('DELETE FROM tokens WHERE family = ?'),
      deleteExpired: db.prepare('DELETE FROM tokens WHERE expires_at < ?'),
      ack: db.prepare('UPDATE clients SET last_ack_watermark = ?, last_ack_at = ? WHERE client_id = ?'),
      clientsOfHome: db.prepare('SELECT * FROM clients WHERE home_id = ?'),
    };
  }

  /** Creates a client (and its home if new) with a fresh id and a 32-byte base64url secret. */
  addClient(homeId: string): ClientCredentials {
    if (homeId.length === 0 || homeId.length > 256) {
      throw new RangeError(`home id must be 1..256 characters, got ${homeId.length}`);
    }
    const clientId = `gw-${randomBytes(12).toString('hex')}`;
    // Hex, not base64url: a secret starting with '-' would read as an option on a command line (`--client-secret -x…`).
    const secret = randomBytes(32).toString('hex');
    const now = this.clock();
    this.db.transaction(() => {
      this.stmts.insertHome.run(homeId, now);
      this.stmts.insertClient.run(clientId, secret, homeId, now);
    })();
    return { client_id: clientId, client_secret: secret, home_id: homeId };
  }

  getClient(clientId: string): ClientRecord | undefined {
    const row = this.stmts.getClient.get(clientId) as ClientRow | undefined;
    return row === undefined ? undefined : toClient(row);
  }

  clientsOfHome(homeId: string): ClientRecord[] {
    return (this.stmts.clientsOfHome.all(homeId) as ClientRow[]).map(toClient);
  }

  /** Checks a client's credentials in constant time; undefined when they do not match. */
  authenticate(clientId: string, secret: string): ClientRecord | undefined {
    const client = this.getClient(clientId);
    // Compare against a dummy when the client is unknown so timing does not reveal which ids exist.
    const ok = constantTimeEqual(client?.secret ?? 'no-such-client-secret-placeholder', secret);
    return ok && client !== undefined ? client : undefined;
  }

  /** Issues an access + refresh pair; the two form a family, revoked together when the refresh token is used. */
  issueTokens(clientId: string, ttl: { accessTtlSeconds: number; refreshTtlSeconds: number }): IssuedTokens {
    const accessToken = randomBytes(32).toString('base64url');
    const refreshToken = randomBytes(32).toString('base64url');
    const family = randomBytes(12).toString('base64url');
    const now = this.clock();
    // A token lost to a power failure only means the client authenticates again: no fsync needed.
    relaxedWrite(this.db, () => {
      this.stmts.insertToken.run(hashToken(accessToken), 'access', clientId, now + ttl.accessTtlSeconds * 1000, family);
      this.stmts.insertToken.run(hashToken(refreshToken), 'refresh', clientId, now + ttl.refreshTtlSeconds * 1000, family);
    });
    return { accessToken, refreshToken, ...ttl };
  }

  /** Resolves a bearer token of the given kind to its client. */
  lookupToken(token: string, kind: 'access' | 'refresh'): TokenLookup {
    const row = this.stmts.getToken.get(hashToken(token)) as TokenRow | undefined;
    if (row === undefined || row.kind !== kind) return { ok: false, reason: 'unknown' };
    if (row.expires_at <= this.clock()) return { ok: false, reason: 'expired' };
    const client = this.getClient(row.client_id);
    return client === undefined ? { ok: false, reason: 'unknown' } : { ok: true, client };
  }

  /**
   * Revokes a refresh token and the access token issued with it, and issues a new pair for its client, in one
   * transaction. (Tokens issued before families existed have none: only the refresh token itself is revoked.)
   * Undefined when the token is gone already (a concurrent refresh with the same token consumed it).
   */
  rotateRefresh(
    refreshToken: string,
    clientId: string,
    ttl: { accessTtlSeconds: number; refreshTtlSeconds: number },
  ): IssuedTokens | undefined {
    const hash = hashToken(refreshToken);
    // fsynced: a revocation must survive a power failure.
    return this.db.transaction(() => {
      const family = this.stmts.familyOf.get(hash) as string | null | undefined;
      if (this.stmts.deleteToken.run(hash).changes !== 1) return undefined;
      if (typeof family === 'string') this.stmts.deleteFamily.run(family);
      return this.issueTokens(clientId, ttl);
    })();
  }

  recordAck(clientId: string, watermark: number): void {
    // A lost ack only delays a tombstone purge: no fsync needed.
    relaxedWrite(this.db, () => this.stmts.ack.run(watermark, this.clock(), clientId));
  }

  deleteExpiredTokens(): number {
    return this.stmts.deleteExpired.run(this.clock()).changes;
  }
}

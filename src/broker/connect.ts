/**
 * The CONNECT pipeline of the embedded broker: aedes's `preConnect` (the CONNECT has arrived) and `authenticate`
 * hooks. In order, each refusal with the CONNACK code that says why (MQTT 3.1.1 §3.2.2.3), then the connection is
 * closed:
 *
 * 1. a zero-length client id with clean session 0 → 2, identifier rejected (MQTT-3.1.3-8; aedes would invent an id);
 *    a client id longer than `maxClientIdBytes` → 2;
 * 2. auth.checkConnect: anonymous policy (5), password throttle (5), password (4), client ids tied to users (2);
 * 3. connections of the identity (a username, or the anonymous clients of one host) at `maxConnectionsPerIdentity`
 *    → 3, server unavailable — unless this CONNECT takes over one of them (same client id, same identity);
 * 4. the client id's session belongs to another identity → 5, and the session's owner stays connected
 *    (sessions.ts).
 *
 * The identity is then bound to the client (ACL checks, retained quota) and released when the connection closes.
 */
import type { Client, ConnectPacket } from 'aedes';
import { CONNACK_IDENTIFIER_REJECTED, CONNACK_NOT_AUTHORIZED, CONNACK_SERVER_UNAVAILABLE, type BrokerAuth, type ConnectedIdentity } from './auth.js';
import { clip } from './log-fields.js';
import { remoteAddressOf } from './peers.js';
import type { RateLimitedLog } from '../util/rate-limited-log.js';
import type { SessionOwners } from './sessions.js';

type AuthenticateError = Error & { returnCode: number };
type AuthenticateCallback = (error: AuthenticateError | null, success: boolean | null) => void;

export interface ConnectHooksOptions {
  readonly auth: BrokerAuth;
  readonly sessions: SessionOwners;
  readonly errors: RateLimitedLog;
  readonly maxClientIdBytes: number;
  readonly maxConnectionsPerIdentity: number;
  /** The connected client with this id, if any (aedes.clients). */
  readonly connectedClient: (clientId: string) => Client | undefined;
  /** Called when a client's CONNECT arrives, before aedes acts on it. */
  readonly onConnectPacket: (client: Client) => void;
}

export interface ConnectHooks {
  preConnect(client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void): void;
  authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: AuthenticateCallback): void;
}

interface Refusal {
  readonly returnCode: number;
  readonly reason: string;
}

export function createConnectHooks(options: ConnectHooksOptions): ConnectHooks {
  const { auth, sessions, errors } = options;
  /** Whether the CONNECT carried an empty client id (aedes replaces it with a generated one before authenticate). */
  const emptyClientId = new WeakSet<Client>();
  const perAccount = new Map<string, number>();

  function refuse(client: Client, refusal: Refusal, username: string | undefined, done: AuthenticateCallback): void {
    errors.record(refusal.reason, 'mqtt connect refused', { clientId: clip(client.id), username: clip(username), remote: remoteAddressOf(client) });
    done(Object.assign(new Error(`connect refused: ${refusal.reason}`), { returnCode: refusal.returnCode }), null);
  }

  function protocolRefusal(client: Client): Refusal | undefined {
    if (emptyClientId.has(client) && !client.clean) return { returnCode: CONNACK_IDENTIFIER_REJECTED, reason: 'empty_client_id_persistent' };
    if (Buffer.byteLength(client.id) > options.maxClientIdBytes) return { returnCode: CONNACK_IDENTIFIER_REJECTED, reason: 'client_id_too_long' };
    return undefined;
  }

  /** Whether one more connection of `identity` fits: a takeover of its own connection (same id) replaces, not adds. */
  function fits(identity: ConnectedIdentity): boolean {
    if ((perAccount.get(identity.account) ?? 0) < options.maxConnectionsPerIdentity) return true;
    const existing = options.connectedClient(identity.clientId);
    return existing !== undefined && auth.identityOf(existing)?.account === identity.account;
  }

  /** Binds the identity and holds its slot and session until the connection closes, or says why not. */
  function admit(client: Client, identity: ConnectedIdentity): Refusal | undefined {
    if (!fits(identity)) return { returnCode: CONNACK_SERVER_UNAVAILABLE, reason: 'too_many_for_identity' };
    const claim = sessions.claim(client.id, identity.sessionOwner, client.clean);
    if (!claim.ok) return { returnCode: CONNACK_NOT_AUTHORIZED, reason: 'session_owned_by_other' };
    perAccount.set(identity.account, (perAccount.get(identity.account) ?? 0) + 1);
    auth.bind(client, identity);
    client.conn.once('close', () => {
      claim.release();
      const left = (perAccount.get(identity.account) ?? 1) - 1;
      if (left <= 0) perAccount.delete(identity.account);
      else perAccount.set(identity.account, left);
    });
    return undefined;
  }

  function authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: AuthenticateCallback): void {
    const early = protocolRefusal(client);
    if (early) {
      refuse(client, early, username, done);
      return;
    }
    auth.checkConnect({ remoteAddress: remoteAddressOf(client), clientId: client.id, username, password }).then(
      (verdict) => {
        // Closed while the password was checked: aedes drops the answer; take nothing.
        if (client.closed || client.conn.destroyed) return done(Object.assign(new Error('connection closed'), { returnCode: CONNACK_NOT_AUTHORIZED }), null);
        if (!verdict.ok) return refuse(client, verdict, username, done);
        const refusal = admit(client, verdict.identity);
        if (refusal) return refuse(client, refusal, username, done);
        done(null, true);
      },
      (err: unknown) => {
        errors.record('auth_failed_unexpectedly', 'authentication failed unexpectedly', { err, clientId: clip(client.id) });
        done(Object.assign(new Error('authentication failed'), { returnCode: CONNACK_NOT_AUTHORIZED }), null);
      },
    );
  }

  return {
    preConnect(client, packet, callback) {
      if (packet.clientId === '') emptyClientId.add(client);
      try {
        options.onConnectPacket(client);
      } catch (err) {
        // A contract check against aedes's internals failed (an upgrade): refuse this client, keep the broker up.
        errors.record('broker_error', 'mqtt connect could not be prepared', { error: clip(err instanceof Error ? err.message : String(err), 300) });
        callback(err instanceof Error ? err : new Error(String(err)), false);
        return;
      }
      callback(null, true);
    },
    authenticate,
  };
}

/**
 * Who may connect to the embedded broker and what they may do (issue 4 item 2; design.md §Broker refusals follow
 * MQTT):
 *
 * - Users are configured with scrypt hashes (password.ts). A CONNECT with a username must carry that user's password,
 *   else CONNACK 4 "bad user name or password" (MQTT 3.1.1 §3.2.2.3). An unknown username costs the same scrypt work
 *   as a known one, so response time does not reveal which usernames exist.
 * - A CONNECT without a username is anonymous: accepted from loopback only by default (`allowAnonymous: 'loopback'`),
 *   from anywhere with `true`, never with `false`; a refused anonymous client gets CONNACK 5 "not authorized".
 * - Topic ACLs (acl.ts) decide PUBLISH and SUBSCRIBE. A denied SUBSCRIBE is granted 0x80 for that filter and the
 *   connection stays; a denied PUBLISH is acknowledged by the normal QoS rules and delivered to no one, as MQTT 3.1.1
 *   §3.3.5 allows ("make a positive acknowledgement … or close the Network Connection").
 */
import type { Client } from 'aedes';
import type { Logger } from '../log.js';
import { ALLOW_ALL_ACL, compileAcl, type Acl, type AclRule, type ClientIdentity } from './acl.js';
import { parsePasswordHash, verifyPassword, type ParsedPasswordHash } from './password.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';

export interface BrokerUser {
  readonly username: string;
  /** `scrypt$N$r$p$salt$hash` (inbetweenies-gateway hash-password). */
  readonly passwordHash: string;
}

/** false: never; 'loopback': only from 127.0.0.0/8 and ::1; true: from anywhere. */
export type AnonymousPolicy = boolean | 'loopback';

export interface BrokerAuthOptions {
  readonly users?: readonly BrokerUser[];
  /** Omitted: no topic restrictions. Present (even empty): deny by default. */
  readonly acl?: readonly AclRule[] | undefined;
  readonly allowAnonymous?: AnonymousPolicy;
  readonly logger: Logger;
  /** Interval of the rate-limited refusal lines; default 10 s. */
  readonly logIntervalMs?: number;
}

/** CONNACK return codes (MQTT 3.1.1 §3.2.2.3). */
export const CONNACK_BAD_USERNAME_OR_PASSWORD = 4;
export const CONNACK_NOT_AUTHORIZED = 5;

export type ConnectVerdict =
  | { readonly ok: true; readonly identity: ClientIdentity }
  | { readonly ok: false; readonly returnCode: 4 | 5; readonly reason: 'bad_credentials' | 'anonymous_refused' };

export interface ConnectAttempt {
  readonly remoteAddress: string | undefined;
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
}

type AuthenticateCallback = (error: (Error & { returnCode: number }) | null, success: boolean | null) => void;

export interface BrokerAuth {
  /** The CONNECT decision, without aedes (unit tests, and the aedes `authenticate` hook below). */
  checkConnect(attempt: ConnectAttempt): Promise<ConnectVerdict>;
  /** aedes `authenticate`. */
  authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: AuthenticateCallback): void;
  /** Whether this client may publish on `topic`; counts and logs a refusal. */
  mayPublish(client: Client | null, topic: string): boolean;
  /** Whether this client may subscribe to `filter`; counts and logs a refusal. */
  maySubscribe(client: Client, filter: string): boolean;
  /** Refusals by reason since start. */
  counts(): Record<string, number>;
  flush(): void;
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped IPv6 forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4 === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

interface SocketLike {
  readonly remoteAddress?: unknown;
}

/** The peer address of an aedes client: the socket's, or for WebSocket the HTTP request's (no proxy headers). */
export function remoteAddressOf(client: Client | null): string | undefined {
  if (!client) return undefined;
  const conn = client.conn;
  if ('remoteAddress' in conn && typeof conn.remoteAddress === 'string') return conn.remoteAddress;
  const fromReq: SocketLike | undefined = client.req?.socket;
  return typeof fromReq?.remoteAddress === 'string' ? fromReq.remoteAddress : undefined;
}

/** Same parameters as hashPassword's defaults, so an unknown user costs what a known one does. */
const DUMMY_HASH: ParsedPasswordHash = parsePasswordHash(
  'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
);

export function createBrokerAuth(options: BrokerAuthOptions): BrokerAuth {
  const log = options.logger.child({ module: 'broker-auth' });
  const refusals = new RateLimitedLog({ logger: log, intervalMs: options.logIntervalMs ?? 10_000, level: 'warn' });
  const users = new Map<string, ParsedPasswordHash>();
  for (const [i, user] of (options.users ?? []).entries()) {
    if (users.has(user.username)) throw new RangeError(`users[${i}].username: ${JSON.stringify(user.username)} is listed twice`);
    try {
      users.set(user.username, parsePasswordHash(user.passwordHash));
    } catch (err) {
      throw new RangeError(`users[${i}].passwordHash: ${(err as Error).message}`);
    }
  }
  const acl: Acl = options.acl === undefined ? ALLOW_ALL_ACL : compileAcl(options.acl);
  const anonymous = options.allowAnonymous ?? 'loopback';
  const identities = new WeakMap<Client, ClientIdentity>();

  async function checkConnect(attempt: ConnectAttempt): Promise<ConnectVerdict> {
    if (attempt.username === undefined) {
      const allowed = anonymous === true || (anonymous === 'loopback' && isLoopbackAddress(attempt.remoteAddress));
      if (!allowed) return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: 'anonymous_refused' };
      return { ok: true, identity: { username: undefined, clientId: attempt.clientId } };
    }
    const hash = users.get(attempt.username);
    const matches = await verifyPassword(attempt.password ?? Buffer.alloc(0), hash ?? DUMMY_HASH);
    if (!hash || !matches || attempt.password === undefined) {
      return { ok: false, returnCode: CONNACK_BAD_USERNAME_OR_PASSWORD, reason: 'bad_credentials' };
    }
    return { ok: true, identity: { username: attempt.username, clientId: attempt.clientId } };
  }

  function authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: AuthenticateCallback): void {
    const remoteAddress = remoteAddressOf(client);
    checkConnect({ remoteAddress, clientId: client.id, username, password }).then(
      (verdict) => {
        if (verdict.ok) {
          identities.set(client, verdict.identity);
          done(null, true);
          return;
        }
        refusals.record(verdict.reason, 'mqtt connect refused', { clientId: client.id, username, remote: remoteAddress });
        done(Object.assign(new Error(`connect refused: ${verdict.reason}`), { returnCode: verdict.returnCode }), null);
      },
      (err: unknown) => {
        log.error({ err, clientId: client.id }, 'authentication failed unexpectedly');
        done(Object.assign(new Error('authentication failed'), { returnCode: CONNACK_NOT_AUTHORIZED }), null);
      },
    );
  }

  function mayPublish(client: Client | null, topic: string): boolean {
    const identity = client ? identities.get(client) : undefined;
    // A null client is aedes publishing the will of a client it no longer knows: only without ACLs.
    if (identity === undefined) return acl === ALLOW_ALL_ACL;
    if (acl.canPublish(identity, topic)) return true;
    refusals.record('acl_publish_denied', 'mqtt publish denied by acl', { ...identity, topic: topic.slice(0, 200) });
    return false;
  }

  function maySubscribe(client: Client, filter: string): boolean {
    const identity = identities.get(client);
    if (identity !== undefined && acl.canSubscribe(identity, filter)) return true;
    refusals.record('acl_subscribe_denied', 'mqtt subscribe denied by acl', { ...identity, filter: filter.slice(0, 200) });
    return false;
  }

  return { checkConnect, authenticate, mayPublish, maySubscribe, counts: () => refusals.counts(), flush: () => refusals.flush() };
}

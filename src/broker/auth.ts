/**
 * Who may connect to the embedded broker and what they may do (docs/security.md §Who may connect, §Topic ACL);
 * refusals follow MQTT:
 *
 * - Users are configured with scrypt hashes (password.ts). A CONNECT with a username must carry that user's password,
 *   else CONNACK 4 "bad user name or password" (MQTT 3.1.1 §3.2.2.3). An unknown username costs the same scrypt work
 *   as a known one, so response time does not reveal which usernames exist. Password checks are throttled per host
 *   before any hashing (auth-throttle.ts): CONNACK 5 when a host has failed too often or has too many waiting.
 * - A CONNECT without a username is anonymous: accepted from loopback only by default (`allowAnonymous: 'loopback'`),
 *   from anywhere with `true`, never with `false`; a refused anonymous client gets CONNACK 5 "not authorized".
 * - A user's client ids may be tied to it (client-ids.ts): CONNACK 2 "identifier rejected" otherwise.
 * - Topic ACLs (acl.ts) decide PUBLISH and SUBSCRIBE, and every delivery. A denied SUBSCRIBE is granted 0x80 for that
 *   filter and the connection stays; a denied PUBLISH is acknowledged by the normal QoS rules and delivered to no
 *   one, as MQTT 3.1.1 §3.3.5 allows ("make a positive acknowledgement … or close the Network Connection").
 */
import type { Client } from 'aedes';
import type { Logger } from '../log.js';
import { OPEN_ACL, compileAcl, type Acl, type AclRule, type ClientIdentity } from './acl.js';
import { AuthThrottle, DEFAULT_AUTH_THROTTLE, type AuthThrottleOptions } from './auth-throttle.js';
import { compileClientIdRules } from './client-ids.js';
import { clip } from './log-fields.js';
import { parsePasswordHash, verifyPassword, type ParsedPasswordHash } from './password.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { hostKey, isLoopbackAddress } from './peers.js';

export { isLoopbackAddress, remoteAddressOf } from './peers.js';

export interface BrokerUser {
  readonly username: string;
  /** `scrypt$N$r$p$salt$hash` (inbetweenies-gateway hash-password). */
  readonly passwordHash: string;
  /** Client id patterns (`*`, `%u`) this user must use, and no one else may. */
  readonly clientIds?: readonly string[] | undefined;
}

/** false: never; 'loopback': only from 127.0.0.0/8 and ::1; true: from anywhere. */
export type AnonymousPolicy = boolean | 'loopback';

export interface BrokerAuthOptions {
  readonly users?: readonly BrokerUser[];
  /** Client id patterns for every user without its own `clientIds`. */
  readonly userClientIds?: readonly string[] | undefined;
  /** Omitted: no topic restrictions (except reading `$SYS/…`). Present (even empty): deny by default. */
  readonly acl?: readonly AclRule[] | undefined;
  readonly allowAnonymous?: AnonymousPolicy;
  /** Per-host throttling of password checks; defaults in DEFAULT_AUTH_THROTTLE. */
  readonly throttle?: AuthThrottleOptions;
  /** The password check (default: scrypt verifyPassword). */
  readonly verify?: (password: Buffer, hash: ParsedPasswordHash) => Promise<boolean>;
  readonly logger: Logger;
  /** Interval of the rate-limited refusal lines; default 10 s. */
  readonly logIntervalMs?: number;
}

/** CONNACK return codes (MQTT 3.1.1 §3.2.2.3). */
export const CONNACK_IDENTIFIER_REJECTED = 2;
export const CONNACK_SERVER_UNAVAILABLE = 3;
export const CONNACK_BAD_USERNAME_OR_PASSWORD = 4;
export const CONNACK_NOT_AUTHORIZED = 5;

/** A client as the limits and sessions see it. */
export interface ConnectedIdentity extends ClientIdentity {
  /** The host it connects from (peers.ts hostKey). */
  readonly host: string;
  /** Counted by connection caps and the retained quota: `user:<name>` or `anonymous@<host>`. */
  readonly account: string;
  /** Owns sessions: `user:<name>`, `anonymous@loopback` or `anonymous@network`. */
  readonly sessionOwner: string;
}

export type ConnectRefusal = 'bad_credentials' | 'anonymous_refused' | 'auth_throttled' | 'auth_busy' | 'client_id_not_allowed' | 'client_id_reserved';

export type ConnectVerdict =
  | { readonly ok: true; readonly identity: ConnectedIdentity }
  | { readonly ok: false; readonly returnCode: 2 | 4 | 5; readonly reason: ConnectRefusal };

export interface ConnectAttempt {
  readonly remoteAddress: string | undefined;
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
}

export interface BrokerAuth {
  /** The CONNECT decision (anonymous policy, throttle, password, client id rules), without aedes. */
  checkConnect(attempt: ConnectAttempt): Promise<ConnectVerdict>;
  /** Remembers who a connected client is (the broker calls it once the CONNECT is accepted). */
  bind(client: Client, identity: ConnectedIdentity): void;
  identityOf(client: Client | null): ConnectedIdentity | undefined;
  /** Whether this client may publish on `topic`; counts and logs a refusal. */
  mayPublish(client: Client | null, topic: string): boolean;
  /** Whether this client may subscribe to `filter`; counts and logs a refusal. */
  maySubscribe(client: Client, filter: string): boolean;
  /** Whether a message on `topic` may be delivered to this client now; counts a refusal. */
  mayReceive(client: Client, topic: string): boolean;
  /** Refusals by reason since start. */
  counts(): Record<string, number>;
  flush(): void;
}

/** Same parameters as hashPassword's defaults, so an unknown user costs what a known one does. */
const DUMMY_HASH: ParsedPasswordHash = parsePasswordHash(
  'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
);

/** The identity keys of a client (see ConnectedIdentity). */
export function identityFor(username: string | undefined, clientId: string, remoteAddress: string | undefined): ConnectedIdentity {
  const host = hostKey(remoteAddress);
  if (username !== undefined) return { username, clientId, host, account: `user:${username}`, sessionOwner: `user:${username}` };
  const local = isLoopbackAddress(remoteAddress);
  return { username, clientId, host, account: `anonymous@${host}`, sessionOwner: local ? 'anonymous@loopback' : 'anonymous@network' };
}

function parseUsers(users: readonly BrokerUser[]): Map<string, ParsedPasswordHash> {
  const parsed = new Map<string, ParsedPasswordHash>();
  for (const [i, user] of users.entries()) {
    if (parsed.has(user.username)) throw new RangeError(`users[${i}].username: ${JSON.stringify(user.username)} is listed twice`);
    try {
      parsed.set(user.username, parsePasswordHash(user.passwordHash));
    } catch (err) {
      throw new RangeError(`users[${i}].passwordHash: ${(err as Error).message}`);
    }
  }
  return parsed;
}

export function createBrokerAuth(options: BrokerAuthOptions): BrokerAuth {
  const log = options.logger.child({ module: 'broker-auth' });
  const refusals = new RateLimitedLog({ logger: log, intervalMs: options.logIntervalMs ?? 10_000, level: 'warn' });
  // Withheld deliveries are the designed effect of a deny that overlaps a granted filter: counted, logged at debug.
  const withheld = new RateLimitedLog({ logger: log, intervalMs: options.logIntervalMs ?? 10_000, level: 'debug' });
  const users = parseUsers(options.users ?? []);
  const clientIds = compileClientIdRules(options.users ?? [], options.userClientIds);
  const acl: Acl = options.acl === undefined ? OPEN_ACL : compileAcl(options.acl);
  const anonymous = options.allowAnonymous ?? 'loopback';
  const throttle = new AuthThrottle(options.throttle ?? DEFAULT_AUTH_THROTTLE);
  const verify = options.verify ?? verifyPassword;
  const identities = new WeakMap<Client, ConnectedIdentity>();

  async function checkPassword(attempt: ConnectAttempt & { username: string }): Promise<ConnectVerdict | undefined> {
    const hash = users.get(attempt.username);
    const host = hostKey(attempt.remoteAddress);
    const matches = await throttle.verify(host, () => verify(attempt.password ?? Buffer.alloc(0), hash ?? DUMMY_HASH));
    if (matches === 'auth_throttled' || matches === 'auth_busy') return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: matches };
    if (!hash || !matches || attempt.password === undefined) {
      return { ok: false, returnCode: CONNACK_BAD_USERNAME_OR_PASSWORD, reason: 'bad_credentials' };
    }
    return undefined;
  }

  async function checkConnect(attempt: ConnectAttempt): Promise<ConnectVerdict> {
    if (attempt.username === undefined) {
      const allowed = anonymous === true || (anonymous === 'loopback' && isLoopbackAddress(attempt.remoteAddress));
      if (!allowed) return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: 'anonymous_refused' };
    } else {
      const refused = await checkPassword({ ...attempt, username: attempt.username });
      if (refused) return refused;
    }
    // After the password, so the id rules (which name users) are told only to someone who is one.
    const idProblem = clientIds.problem(attempt.username, attempt.clientId);
    if (idProblem) return { ok: false, returnCode: CONNACK_IDENTIFIER_REJECTED, reason: idProblem === 'reserved' ? 'client_id_reserved' : 'client_id_not_allowed' };
    return { ok: true, identity: identityFor(attempt.username, attempt.clientId, attempt.remoteAddress) };
  }

  function mayPublish(client: Client | null, topic: string): boolean {
    const identity = client ? identities.get(client) : undefined;
    // A null client is aedes publishing the will of a client it no longer knows: only without ACLs.
    if (identity === undefined) return acl === OPEN_ACL;
    if (acl.canPublish(identity, topic)) return true;
    refusals.record('acl_publish_denied', 'mqtt publish denied by acl', { ...logged(identity), topic: clip(topic) });
    return false;
  }

  function maySubscribe(client: Client, filter: string): boolean {
    const identity = identities.get(client);
    if (identity !== undefined && acl.canSubscribe(identity, filter)) return true;
    refusals.record('acl_subscribe_denied', 'mqtt subscribe denied by acl', { ...(identity ? logged(identity) : {}), filter: clip(filter) });
    return false;
  }

  function mayReceive(client: Client, topic: string): boolean {
    const identity = identities.get(client);
    if (identity !== undefined && acl.canRead(identity, topic)) return true;
    withheld.record('acl_delivery_withheld', 'mqtt delivery withheld by acl', { ...(identity ? logged(identity) : {}), topic: clip(topic) });
    return false;
  }

  return {
    checkConnect,
    bind: (client, identity) => identities.set(client, identity),
    identityOf: (client) => (client ? identities.get(client) : undefined),
    mayPublish,
    maySubscribe,
    mayReceive,
    counts: () => ({ ...refusals.counts(), ...withheld.counts() }),
    flush: () => {
      refusals.flush();
      withheld.flush();
    },
  };
}

/** The identity as a log line shows it: client-supplied strings clipped. */
export function logged(identity: ClientIdentity): { clientId: string | undefined; username: string | undefined } {
  return { clientId: clip(identity.clientId), username: clip(identity.username) };
}

/**
 * The broker's auth when none is configured (no users, no ACL, anonymous from anywhere): every CONNECT is accepted
 * and, as Mosquitto does with `allow_anonymous true` and no password file, a username is not checked — every client
 * counts as anonymous.
 */
export function createOpenAuth(logger: Logger): BrokerAuth {
  const auth = createBrokerAuth({ logger, allowAnonymous: true });
  return {
    ...auth,
    checkConnect: (attempt) => auth.checkConnect({ ...attempt, username: undefined, password: undefined }),
  };
}

/**
 * Client ids tied to users (docs/security.md §Sessions and client ids), like Mosquitto's `use_username_as_clientid` or
 * `clientid_prefixes`, per user:
 *
 * - a user with `clientIds` patterns (or, without its own, the broker-wide `userClientIds`) may connect only with a
 *   client id matching one of them;
 * - a client id that matches some users' patterns belongs to those users: anyone else (another user, an anonymous
 *   client) is refused it, so no one can take a device's id before the device connects.
 *
 * A pattern is literal text where `*` matches any run of characters (also none) and `%u` is the user's name:
 * `"%u"` ties the id to the username, `"%u-*"` to ids like `alice-lock`. A refused id gets CONNACK 2 "identifier
 * rejected" (MQTT 3.1.1 §3.2.2.3, MQTT-3.1.3-9).
 */

export interface ClientIdUser {
  readonly username: string;
  readonly clientIds?: readonly string[] | undefined;
}

export interface ClientIdRules {
  /** Why `username` (undefined: anonymous) may not use `clientId`, or undefined when it may. */
  problem(username: string | undefined, clientId: string): 'not_allowed' | 'reserved' | undefined;
}

/** Why a pattern cannot be used, or undefined. */
export function clientIdPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'expected a non-empty pattern';
  if (pattern.length > 256) return 'expected at most 256 characters';
  if (/^\**$/.test(pattern)) return 'a pattern of only * matches every client id; leave clientIds out instead';
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The pattern as an anchored RegExp for one user (`%u` replaced by the escaped name). */
export function compileClientIdPattern(pattern: string, username: string): RegExp {
  const source = pattern
    .split('*')
    .map((part) => escapeRegExp(part).replaceAll('%u', escapeRegExp(username)))
    .join('.*');
  return new RegExp(`^${source}$`, 's');
}

export function compileClientIdRules(users: readonly ClientIdUser[], defaults: readonly string[] = []): ClientIdRules {
  const patterns = new Map<string, readonly RegExp[]>();
  for (const user of users) {
    const own = user.clientIds ?? defaults;
    own.forEach((pattern, i) => {
      const problem = clientIdPatternProblem(pattern);
      if (problem) throw new RangeError(`users[${user.username}].clientIds[${i}]: ${problem}`);
    });
    if (own.length > 0) patterns.set(user.username, own.map((p) => compileClientIdPattern(p, user.username)));
  }

  function matches(username: string, clientId: string): boolean {
    return (patterns.get(username) ?? []).some((re) => re.test(clientId));
  }

  return {
    problem(username, clientId) {
      if (username !== undefined && patterns.has(username) && !matches(username, clientId)) return 'not_allowed';
      for (const owner of patterns.keys()) {
        if (owner !== username && matches(owner, clientId)) {
          // Shared by several users' patterns: allowed to any of them.
          return username !== undefined && matches(username, clientId) ? undefined : 'reserved';
        }
      }
      return undefined;
    },
  };
}

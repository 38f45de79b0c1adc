/**
 * Topic access control for the embedded broker (issue 4 item 2), pure rules:
 *
 * - A rule applies to authenticated users (all of them, or those listed in `users`) or, with `anonymous: true`, to
 *   clients that sent no username. Its `publish` and `subscribe` lists are MQTT topic filters (MQTT 3.1.1 §4.7).
 * - `%u` is replaced by the username and `%c` by the client id. A rule whose placeholder value is empty or contains
 *   `/`, `+` or `#` does not apply (a client id `victim/x` must not reach into `devices/victim/…` through
 *   `devices/%c/#`); Mosquitto's `pattern` lines behave the same way for `+` and `#`.
 * - Deny by default once any rule is configured: a PUBLISH is allowed when its topic matches an allowed filter; a
 *   SUBSCRIBE filter is allowed when every topic it can match is matched by one allowed filter (`a/+` covers `a/b`
 *   and `a/+`, not `a/#`). Topics starting with `$` are matched only by filters that start with the same literal
 *   level (MQTT 3.1.1 §4.7.2), so `#` never grants `$SYS/…`.
 */

export interface ClientIdentity {
  /** undefined for an anonymous client. */
  readonly username: string | undefined;
  readonly clientId: string;
}

export interface AclRule {
  /** Usernames the rule applies to; omitted: every authenticated user. */
  readonly users?: readonly string[] | undefined;
  /** The rule applies to anonymous clients too; with `users` omitted, to anonymous clients only. */
  readonly anonymous?: boolean | undefined;
  readonly publish?: readonly string[] | undefined;
  readonly subscribe?: readonly string[] | undefined;
}

export type AclAction = 'publish' | 'subscribe';

export interface Acl {
  /** True when the client may publish on `topic` (a topic name, no wildcards). */
  canPublish(identity: ClientIdentity, topic: string): boolean;
  /** True when the client may subscribe to `filter` (wildcards allowed). */
  canSubscribe(identity: ClientIdentity, filter: string): boolean;
}

/** Why a topic filter is malformed (MQTT 3.1.1 §4.7.1), or undefined; placeholders count as plain characters. */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'expected a non-empty topic filter';
  if (Buffer.byteLength(filter) > 65_535) return 'expected at most 65535 bytes';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i += 1) {
    const level = levels[i] ?? '';
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `'#' must be a whole level and the last one: ${filter}`;
    if (level.includes('+') && level !== '+') return `'+' must be a whole level: ${filter}`;
  }
  return undefined;
}

/**
 * True when every topic matched by `filter` is also matched by `pattern` (both split into levels). With a topic
 * name (no wildcards) as `filter`, this is plain topic matching.
 */
export function filterCovers(pattern: readonly string[], filter: readonly string[]): boolean {
  const first = filter[0] ?? '';
  if (first.startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false;
  for (let i = 0; i < pattern.length; i += 1) {
    const p = pattern[i];
    if (p === '#') return true;
    const f = filter[i];
    if (f === undefined || f === '#') return false;
    if (p === '+') continue;
    if (f === '+' || f !== p) return false;
  }
  return pattern.length === filter.length;
}

/** Replaces %u and %c; undefined when a placeholder's value could widen or shift the filter. */
export function expandPlaceholders(filter: string, identity: ClientIdentity): string | undefined {
  if (!filter.includes('%')) return filter;
  let out = filter;
  if (out.includes('%u')) {
    if (!isPlainLevel(identity.username)) return undefined;
    out = out.replaceAll('%u', identity.username);
  }
  if (out.includes('%c')) {
    if (!isPlainLevel(identity.clientId)) return undefined;
    out = out.replaceAll('%c', identity.clientId);
  }
  return out;
}

function isPlainLevel(value: string | undefined): value is string {
  return value !== undefined && value.length > 0 && !/[/+#\0]/.test(value);
}

interface CompiledRule {
  readonly users: ReadonlySet<string> | undefined;
  readonly anonymous: boolean;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

function applies(rule: CompiledRule, identity: ClientIdentity): boolean {
  if (identity.username === undefined) return rule.anonymous;
  if (rule.users) return rule.users.has(identity.username);
  return !rule.anonymous; // `anonymous: true` without `users`: anonymous clients only
}

/** A rule list checked by `topicFilterProblem`; throws RangeError naming the bad entry. */
export function compileAcl(rules: readonly AclRule[]): Acl {
  const compiled: CompiledRule[] = rules.map((rule, i) => {
    for (const action of ['publish', 'subscribe'] as const) {
      (rule[action] ?? []).forEach((filter, j) => {
        const problem = topicFilterProblem(filter);
        if (problem) throw new RangeError(`acl[${i}].${action}[${j}]: ${problem}`);
      });
    }
    return {
      users: rule.users ? new Set(rule.users) : undefined,
      anonymous: rule.anonymous ?? false,
      publish: rule.publish ?? [],
      subscribe: rule.subscribe ?? [],
    };
  });

  function allowed(action: AclAction, identity: ClientIdentity, target: string): boolean {
    const levels = target.split('/');
    for (const rule of compiled) {
      if (!applies(rule, identity)) continue;
      for (const filter of rule[action]) {
        const expanded = expandPlaceholders(filter, identity);
        if (expanded !== undefined && filterCovers(expanded.split('/'), levels)) return true;
      }
    }
    return false;
  }

  return {
    canPublish: (identity, topic) => allowed('publish', identity, topic),
    canSubscribe: (identity, filter) => allowed('subscribe', identity, filter),
  };
}

/** The ACL when none is configured: everything a connected client asks for is allowed. */
export const ALLOW_ALL_ACL: Acl = { canPublish: () => true, canSubscribe: () => true };

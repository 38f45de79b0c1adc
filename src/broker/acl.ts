/**
 * Topic access control for the embedded broker (docs/security.md §Topic ACL), pure rules:
 *
 * - A rule applies to authenticated users (all of them, or those listed in `users`) or, with `anonymous: true`, to
 *   clients that sent no username. Its `publish` and `subscribe` lists allow, its `deny.publish` and `deny.subscribe`
 *   lists refuse; all are MQTT topic filters (MQTT 3.1.1 §4.7).
 * - Deny is checked before allow, over every rule that applies: a topic or filter a deny covers is refused whatever
 *   another rule allows (Mosquitto's `deny` lines win the same way).
 * - `%u` is replaced by the username and `%c` by the client id. In an allow, a placeholder whose value is empty or
 *   contains `/`, `+` or `#` makes that filter not apply (a client id `victim/x` must not reach into `devices/victim/…`
 *   through `devices/%c/#`); Mosquitto's `pattern` lines behave the same way for `+` and `#`. In a deny the same value
 *   widens the level to `+`, so an odd client id can never slip past a deny.
 * - Deny by default once any rule is configured: a PUBLISH is allowed when its topic matches an allowed filter and no
 *   denied one. A SUBSCRIBE filter is allowed when every topic it can match is matched by one allowed filter (`a/+`
 *   covers `a/b` and `a/+`, not `a/#`) and no denied filter covers all of it; a filter that merely overlaps a denied
 *   one (`#` with `secret/x` denied) is granted, and `canRead` keeps the denied topics from being delivered to it.
 * - Topics starting with `$` are matched only by filters that start with the same literal level (MQTT 3.1.1 §4.7.2),
 *   so `#` never grants `$SYS/…`. Without any rule, `$SYS/…` is still not readable (it lists every client id).
 */

export interface ClientIdentity {
  /** undefined for an anonymous client. */
  readonly username: string | undefined;
  readonly clientId: string;
}

export interface AclDeny {
  readonly publish?: readonly string[] | undefined;
  readonly subscribe?: readonly string[] | undefined;
}

export interface AclRule {
  /** Usernames the rule applies to; omitted: every authenticated user. */
  readonly users?: readonly string[] | undefined;
  /** The rule applies to anonymous clients too; with `users` omitted, to anonymous clients only. */
  readonly anonymous?: boolean | undefined;
  readonly publish?: readonly string[] | undefined;
  readonly subscribe?: readonly string[] | undefined;
  /** Refused for the same clients, before any allow of any rule is looked at. */
  readonly deny?: AclDeny | undefined;
}

export type AclAction = 'publish' | 'subscribe';

export interface Acl {
  /** True when the client may publish on `topic` (a topic name, no wildcards). */
  canPublish(identity: ClientIdentity, topic: string): boolean;
  /** True when the client may subscribe to `filter` (wildcards allowed). */
  canSubscribe(identity: ClientIdentity, filter: string): boolean;
  /** True when a message on `topic` may be delivered to the client (checked for every message it is sent). */
  canRead(identity: ClientIdentity, topic: string): boolean;
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

/**
 * For a deny filter: like expandPlaceholders, but a level whose placeholder has no usable value becomes `+`, so the
 * deny covers at least every value that level could take.
 */
export function expandDenyPlaceholders(filter: string, identity: ClientIdentity): string {
  if (!filter.includes('%')) return filter;
  return filter
    .split('/')
    .map((level) => {
      if (!level.includes('%u') && !level.includes('%c')) return level;
      const usable = (!level.includes('%u') || isPlainLevel(identity.username)) && (!level.includes('%c') || isPlainLevel(identity.clientId));
      return usable ? (expandPlaceholders(level, identity) ?? '+') : '+';
    })
    .join('/');
}

function isPlainLevel(value: string | undefined): value is string {
  return value !== undefined && value.length > 0 && !/[/+#\0]/.test(value);
}

interface CompiledRule {
  readonly users: ReadonlySet<string> | undefined;
  readonly anonymous: boolean;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  readonly denyPublish: readonly string[];
  readonly denySubscribe: readonly string[];
}

function applies(rule: CompiledRule, identity: ClientIdentity): boolean {
  if (identity.username === undefined) return rule.anonymous;
  if (rule.users) return rule.users.has(identity.username);
  return !rule.anonymous; // `anonymous: true` without `users`: anonymous clients only
}

function checkFilters(filters: readonly string[] | undefined, where: string): readonly string[] {
  (filters ?? []).forEach((filter, j) => {
    const problem = topicFilterProblem(filter);
    if (problem) throw new RangeError(`${where}[${j}]: ${problem}`);
  });
  return filters ?? [];
}

function compileRule(rule: AclRule, i: number): CompiledRule {
  return {
    users: rule.users ? new Set(rule.users) : undefined,
    anonymous: rule.anonymous ?? false,
    publish: checkFilters(rule.publish, `acl[${i}].publish`),
    subscribe: checkFilters(rule.subscribe, `acl[${i}].subscribe`),
    denyPublish: checkFilters(rule.deny?.publish, `acl[${i}].deny.publish`),
    denySubscribe: checkFilters(rule.deny?.subscribe, `acl[${i}].deny.subscribe`),
  };
}

/** A rule list checked by `topicFilterProblem`; throws RangeError naming the bad entry. */
export function compileAcl(rules: readonly AclRule[]): Acl {
  const compiled = rules.map(compileRule);

  /** Whether a deny of `action` covers every topic `target` can match (for a topic name: matches it). */
  function denied(action: AclAction, identity: ClientIdentity, levels: readonly string[]): boolean {
    for (const rule of compiled) {
      if (!applies(rule, identity)) continue;
      for (const filter of action === 'publish' ? rule.denyPublish : rule.denySubscribe) {
        if (filterCovers(expandDenyPlaceholders(filter, identity).split('/'), levels)) return true;
      }
    }
    return false;
  }

  function allowed(action: AclAction, identity: ClientIdentity, levels: readonly string[]): boolean {
    for (const rule of compiled) {
      if (!applies(rule, identity)) continue;
      for (const filter of rule[action]) {
        const expanded = expandPlaceholders(filter, identity);
        if (expanded !== undefined && filterCovers(expanded.split('/'), levels)) return true;
      }
    }
    return false;
  }

  const check = (action: AclAction) => (identity: ClientIdentity, target: string): boolean => {
    const levels = target.split('/');
    return !denied(action, identity, levels) && allowed(action, identity, levels);
  };
  return { canPublish: check('publish'), canSubscribe: check('subscribe'), canRead: check('subscribe') };
}

const SYS_LEVEL = '$SYS';

/**
 * The ACL when none is configured: a connected client may publish and subscribe anywhere, except that `$SYS/…`
 * (aedes's broker topics: every client id, every subscription) cannot be read — an ACL rule must allow it by name.
 */
export const OPEN_ACL: Acl = {
  canPublish: () => true,
  canSubscribe: (_identity, filter) => filter.split('/', 1)[0] !== SYS_LEVEL,
  canRead: (_identity, topic) => topic.split('/', 1)[0] !== SYS_LEVEL,
};

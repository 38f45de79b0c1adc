/** The pure ACL rules (src/broker/acl.ts): MQTT wildcard semantics, placeholders, deny by default. */
import { describe, expect, it } from 'vitest';
import { OPEN_ACL, compileAcl, expandDenyPlaceholders, expandPlaceholders, filterCovers, topicFilterProblem } from '../../src/broker/acl.js';

const covers = (pattern: string, filter: string): boolean => filterCovers(pattern.split('/'), filter.split('/'));
const alice = { username: 'alice', clientId: 'alice-phone' };
const anon = { username: undefined, clientId: 'lamp-7' };

describe('topic filter coverage (MQTT 3.1.1 §4.7)', () => {
  it('matches topics with + and # like a broker does', () => {
    expect(covers('a/+/c', 'a/b/c')).toBe(true);
    expect(covers('a/+/c', 'a/b/d')).toBe(false);
    expect(covers('a/#', 'a')).toBe(true); // '#' includes the parent level
    expect(covers('a/#', 'a/b/c/d')).toBe(true);
    expect(covers('a/+', 'a/b/c')).toBe(false);
    expect(covers('a/b', 'a/b/c')).toBe(false);
    expect(covers('#', '$SYS/broker/load')).toBe(false); // §4.7.2
    expect(covers('+/broker', '$SYS/broker')).toBe(false);
    expect(covers('$SYS/#', '$SYS/broker')).toBe(true);
  });

  it('grants a subscription filter only when every topic it can match is allowed', () => {
    expect(covers('a/+', 'a/+')).toBe(true);
    expect(covers('a/#', 'a/+/c')).toBe(true);
    expect(covers('a/#', 'a/#')).toBe(true);
    expect(covers('a/+', 'a/#')).toBe(false);
    expect(covers('a/b', 'a/+')).toBe(false);
    expect(covers('+/+', '#')).toBe(false);
    expect(covers('#', '#')).toBe(true);
  });

  it('names malformed filters', () => {
    expect(topicFilterProblem('a/#/b')).toMatch(/'#' must be a whole level and the last one/);
    expect(topicFilterProblem('a/b+')).toMatch(/'\+' must be a whole level/);
    expect(topicFilterProblem('')).toMatch(/non-empty/);
    expect(topicFilterProblem('devices/%u/#')).toBeUndefined();
  });
});

describe('placeholders', () => {
  it('replaces %u and %c, and refuses values that would widen or shift the filter', () => {
    expect(expandPlaceholders('devices/%u/%c/#', alice)).toBe('devices/alice/alice-phone/#');
    expect(expandPlaceholders('devices/%u/#', anon)).toBeUndefined();
    expect(expandPlaceholders('devices/%c/#', { username: 'x', clientId: 'victim/x' })).toBeUndefined();
    expect(expandPlaceholders('devices/%c/#', { username: 'x', clientId: '#' })).toBeUndefined();
    expect(expandPlaceholders('devices/%u', { username: 'a+b', clientId: 'c' })).toBeUndefined();
    expect(expandPlaceholders('plain/topic', anon)).toBe('plain/topic');
  });
});

describe('compiled ACL', () => {
  const acl = compileAcl([
    { publish: ['devices/%u/#'], subscribe: ['devices/%u/set', 'broadcast/#'] },
    { users: ['z2m'], publish: ['zigbee2mqtt/#'], subscribe: ['zigbee2mqtt/+/set'] },
    { anonymous: true, publish: ['anon/%c/state'] },
  ]);

  it('gives every user the %u rule, a listed user its own rule, and denies the rest', () => {
    expect(acl.canPublish(alice, 'devices/alice/state')).toBe(true);
    expect(acl.canPublish(alice, 'devices/bob/state')).toBe(false);
    expect(acl.canPublish(alice, 'zigbee2mqtt/lamp')).toBe(false);
    expect(acl.canPublish({ username: 'z2m', clientId: 'z' }, 'zigbee2mqtt/lamp')).toBe(true);
    expect(acl.canSubscribe(alice, 'devices/alice/set')).toBe(true);
    expect(acl.canSubscribe(alice, 'devices/+/set')).toBe(false);
    expect(acl.canSubscribe(alice, 'broadcast/x/y')).toBe(true);
    expect(acl.canSubscribe(alice, '#')).toBe(false);
  });

  it('applies anonymous rules to anonymous clients only', () => {
    expect(acl.canPublish(anon, 'anon/lamp-7/state')).toBe(true);
    expect(acl.canPublish(anon, 'anon/lamp-8/state')).toBe(false);
    expect(acl.canPublish(anon, 'devices/lamp-7/state')).toBe(false);
    expect(acl.canPublish({ username: 'alice', clientId: 'lamp-7' }, 'anon/lamp-7/state')).toBe(false);
  });

  it('denies everything with an empty rule list, and rejects a malformed filter naming its place', () => {
    const none = compileAcl([]);
    expect(none.canPublish(alice, 'a')).toBe(false);
    expect(none.canSubscribe(alice, 'a')).toBe(false);
    expect(() => compileAcl([{ publish: ['ok/#'] }, { subscribe: ['bad/#/x'] }])).toThrow(/acl\[1\]\.subscribe\[0\]/);
  });
});

describe('deny rules', () => {
  const acl = compileAcl([
    { publish: ['#'], subscribe: ['#'], deny: { publish: ['locks/#'], subscribe: ['secret/x', 'private/%u/#'] } },
    { users: ['admin'], publish: ['locks/#'], subscribe: ['$SYS/#'] },
  ]);
  const admin = { username: 'admin', clientId: 'a' };

  it('checks every applicable deny before any allow, whichever rule allows', () => {
    expect(acl.canPublish(alice, 'locks/front')).toBe(false);
    expect(acl.canPublish(admin, 'locks/front')).toBe(false); // the first rule's deny applies to admin too
    expect(acl.canPublish(alice, 'lights/hall')).toBe(true);
  });

  it('refuses a filter inside a denied one, grants one that only overlaps it, and withholds the denied topic', () => {
    expect(acl.canSubscribe(alice, 'secret/x')).toBe(false);
    expect(acl.canSubscribe(alice, '#')).toBe(true);
    expect(acl.canSubscribe(alice, 'secret/+')).toBe(true);
    expect(acl.canRead(alice, 'secret/x')).toBe(false);
    expect(acl.canRead(alice, 'secret/y')).toBe(true);
    expect(acl.canSubscribe(alice, 'private/alice/#')).toBe(false);
    expect(acl.canSubscribe(alice, 'private/alice/cam')).toBe(false);
    expect(acl.canRead(alice, 'private/bob/cam')).toBe(true);
    expect(acl.canSubscribe(admin, '$SYS/#')).toBe(true);
    expect(acl.canSubscribe(alice, '$SYS/#')).toBe(false);
  });

  it('widens a deny level whose placeholder has no usable value to +, so odd ids cannot slip past', () => {
    expect(expandDenyPlaceholders('private/%u/#', anon)).toBe('private/+/#');
    expect(expandDenyPlaceholders('dev/%c/set', { username: 'x', clientId: 'a/b' })).toBe('dev/+/set');
    expect(expandDenyPlaceholders('dev/%c-%u/set', { username: 'x', clientId: 'c' })).toBe('dev/c-x/set');
    const anonDeny = compileAcl([{ anonymous: true, subscribe: ['#'], deny: { subscribe: ['private/%u/#'] } }]);
    expect(anonDeny.canRead(anon, 'private/alice/cam')).toBe(false);
    expect(anonDeny.canRead(anon, 'public/x')).toBe(true);
  });

  it('without rules: everything but reading $SYS', () => {
    expect(OPEN_ACL.canPublish(anon, 'a/b')).toBe(true);
    expect(OPEN_ACL.canSubscribe(anon, '#')).toBe(true);
    expect(OPEN_ACL.canSubscribe(anon, '$SYS/#')).toBe(false);
    expect(OPEN_ACL.canRead(anon, '$SYS/broker/clients')).toBe(false);
    expect(() => compileAcl([{ deny: { subscribe: ['a/#/b'] } }])).toThrow(/acl\[0\]\.deny\.subscribe\[0\]/);
  });
});


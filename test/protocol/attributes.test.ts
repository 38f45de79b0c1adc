import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addHash,
  DigestBuilder,
  entityHash,
  latestVersion,
  mergeAttributes,
  subHash,
  wholeStateWrite,
  type AttrVersion,
} from '../../src/protocol/index.js';

const v = (t: number, s: string, o = 'x', q = t): AttrVersion => ({ t, s, q, o });

describe('mergeAttributes (seed §Last-Write-Wins Rules per attribute)', () => {
  const stored = { state: { power: 'on', brightness: 10 }, meta: { power: v(1_000_000, 'a'), brightness: v(5_000_000, 'b') }, fallback: v(0, 'z') };

  it('later wins per attribute; an untouched attribute stays', () => {
    const r = mergeAttributes(stored, { set: { power: 'off', brightness: 1 }, removed: [], version: v(3_000_000, 'c', 'y') });
    expect(r.state).toEqual({ power: 'off', brightness: 10 });
    expect(r.decisions.map((d) => [d.name, d.winner, d.reason])).toEqual([
      ['power', 'client', 'newer_on_client'],
      ['brightness', 'server', 'newer_on_server'],
    ]);
    expect(r.meta.brightness?.q).toBe(3_000_000); // re-announced to the writer, version kept
    expect(r.meta.brightness?.s).toBe('b');
  });

  it('within 1 s the higher sync_id wins', () => {
    expect(mergeAttributes(stored, { set: { brightness: 2 }, removed: [], version: v(5_500_000, 'a') }).state.brightness).toBe(10);
    expect(mergeAttributes(stored, { set: { brightness: 2 }, removed: [], version: v(5_500_000, 'c') }).state.brightness).toBe(2);
  });

  it('a removal is a version like a value; a whole state removes the older attributes it lacks', () => {
    const write = wholeStateWrite(stored.state, { power: 'off' }, v(4_000_000, 'w'));
    expect(write.removed).toEqual(['brightness']);
    const r = mergeAttributes(stored, write);
    expect(r.state).toEqual({ power: 'off', brightness: 10 }); // brightness (5 s) is newer than the removal (4 s)
    const later = mergeAttributes(stored, wholeStateWrite(stored.state, { power: 'off' }, v(9_000_000, 'w')));
    expect(later.state).toEqual({ power: 'off' });
    expect(later.meta.brightness?.s).toBe('w'); // the attribute tombstone
  });

  it('the same write again changes nothing', () => {
    const write = { set: { power: 'off' }, removed: [], version: v(3_000_000, 'c') };
    const once = mergeAttributes(stored, write);
    const twice = mergeAttributes({ ...once, fallback: stored.fallback }, write);
    expect(twice.wrote).toBe(false);
    expect(twice.state).toEqual(once.state);
  });

  it('the result does not depend on the order two writes arrive in (for writes more than 1 s apart)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.integer()), fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.integer()), (t1, t2, s1, s2) => {
        fc.pre(t1 !== t2);
        const base = { state: {}, meta: {}, fallback: v(0, '0') };
        const w1 = { set: s1, removed: [], version: v(t1 * 2_000_000, 'p') };
        const w2 = { set: s2, removed: [], version: v(t2 * 2_000_000, 'q') };
        const ab = mergeAttributes({ ...mergeAttributes(base, w1), fallback: base.fallback }, w2);
        const ba = mergeAttributes({ ...mergeAttributes(base, w2), fallback: base.fallback }, w1);
        expect(ab.state).toEqual(ba.state);
      }),
    );
  });

  it('latestVersion is the entity version for entity-level rules', () => {
    expect(latestVersion(stored.meta, stored.fallback).s).toBe('b');
  });
});

describe('digest', () => {
  it('is order-independent and maintained incrementally', () => {
    const one = new DigestBuilder();
    one.add('entity_state', 'a', { state: { x: 1 } });
    one.add('device', 'b', { name: 'B' });
    const two = new DigestBuilder();
    two.add('device', 'b', { name: 'B' });
    two.add('entity_state', 'a', { state: { x: 1 } });
    expect(one.home()).toBe(two.home());
    const changed = subHash(addHash(one.home(), entityHash('device', 'b', { name: 'C' })), entityHash('device', 'b', { name: 'B' }));
    const fresh = new DigestBuilder();
    fresh.add('entity_state', 'a', { state: { x: 1 } });
    fresh.add('device', 'b', { name: 'C' });
    expect(changed).toBe(fresh.home());
    expect(entityHash('device', 'b', { a: 1, b: 2 })).toBe(entityHash('device', 'b', { b: 2, a: 1 }));
  });
});

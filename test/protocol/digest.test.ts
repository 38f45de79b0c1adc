/**
 * The convergence digest's primitives (docs/protocol.md §Convergence digest): the entity hash as the protocol defines
 * it (computed here independently, so a faster implementation cannot drift from the definition), canonical JSON, and
 * the 64-bit bucket sums kept as two 32-bit halves, against BigInt arithmetic modulo 2^64.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BucketSums, DigestBuilder, bucketOf, canonicalJson, entityHash, entityHashHex, homeDigest } from '../../src/protocol/index.js';

const MOD = 1n << 64n;

describe('convergence digest primitives', () => {
  it('entity hash: the first 8 bytes of SHA-256 over type NUL id NUL canonical JSON (keys sorted, no spaces)', () => {
    const data = { state: { power: 'on', brightness: 80 }, device_id: 'lamp' };
    const text = 'entity_state\u0000lamp\u0000{"device_id":"lamp","state":{"brightness":80,"power":"on"}}';
    const expected = createHash('sha256').update(text).digest().subarray(0, 8).toString('hex');
    expect(entityHashHex('entity_state', 'lamp', data)).toBe(expected);
    expect(entityHash('entity_state', 'lamp', data)).toBe(BigInt(`0x${expected}`));
    // key order never matters; nested arrays keep their order
    expect(canonicalJson({ b: [2, { y: 1, x: null }], a: 'é' })).toBe('{"a":"é","b":[2,{"x":null,"y":1}]}');
    expect(canonicalJson({ '10': 1, '9': 2, B: true, a: false })).toBe('{"10":1,"9":2,"B":true,"a":false}');
  });

  it('bucket: FNV-1a of type NUL id modulo 16, fixed by the key alone', () => {
    let h = 0x811c9dc5;
    for (const ch of 'device\u0000dev-1') h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
    expect(bucketOf('device', 'dev-1')).toBe((h >>> 0) % 16);
  });

  it('bucket sums add and subtract modulo 2^64 exactly as BigInt does, carries and borrows included', () => {
    const sums = new BucketSums();
    const expected = new Array<bigint>(16).fill(0n);
    const edge = ['ffffffffffffffff', '00000000ffffffff', 'ffffffff00000000', '0000000000000001', '8000000000000000'];
    for (let i = 0; i < 5_000; i++) {
      const hex = i < edge.length * 4 ? (edge[i % edge.length] as string) : randomBytes(8).toString('hex');
      const bucket = i % 16;
      const sign = i % 3 === 0 ? -1 : 1;
      sums.addHex(bucket, hex, sign);
      expected[bucket] = ((expected[bucket] ?? 0n) + BigInt(sign) * BigInt(`0x${hex}`) + MOD) % MOD;
    }
    expect(sums.toBigInts()).toEqual(expected);
  });

  it('a builder over entities equals the sum of their hashes, in any order', () => {
    const entities = Array.from({ length: 200 }, (_, i) => ({ type: i % 2 ? 'device' : 'entity_state', id: `e-${i}`, data: { n: i } }));
    const forward = new DigestBuilder();
    for (const e of entities) forward.add(e.type, e.id, e.data);
    const backward = new DigestBuilder();
    for (const e of [...entities].reverse()) backward.add(e.type, e.id, e.data);
    const byBucket = new Array<bigint>(16).fill(0n);
    for (const e of entities) {
      const b = bucketOf(e.type, e.id);
      byBucket[b] = ((byBucket[b] ?? 0n) + entityHash(e.type, e.id, e.data)) % MOD;
    }
    expect(forward.buckets).toEqual(byBucket);
    expect(backward.home()).toBe(forward.home());
    expect(forward.home()).toBe(homeDigest(byBucket));
  });
});

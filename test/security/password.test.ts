import { describe, expect, it } from 'vitest';
import { hashPassword, parsePasswordHash, passwordHashProblem, verifyPassword } from '../../src/broker/password.js';

const FAST = { N: 1024, r: 8, p: 1 };

describe('scrypt password hashes', () => {
  it('hashes in the scrypt$N$r$p$salt$hash format and verifies only the right password', async () => {
    const encoded = await hashPassword('correct horse', FAST);
    expect(encoded).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(passwordHashProblem(encoded)).toBeUndefined();
    expect(await verifyPassword('correct horse', encoded)).toBe(true);
    expect(await verifyPassword(Buffer.from('correct horse'), encoded)).toBe(true);
    expect(await verifyPassword('correct horsf', encoded)).toBe(false);
    expect(await verifyPassword('', encoded)).toBe(false);
  });

  it('salts every hash, and the default parameters are N=16384 r=8 p=1', async () => {
    const a = await hashPassword('same');
    const b = await hashPassword('same');
    expect(a).not.toBe(b);
    expect(parsePasswordHash(a)).toMatchObject({ N: 16384, r: 8, p: 1 });
    expect(parsePasswordHash(a).salt.length).toBe(16);
    expect(parsePasswordHash(a).hash.length).toBe(32);
  });

  it('refuses malformed hashes and parameters that would cost too much, saying why', async () => {
    expect(passwordHashProblem('plaintext')).toMatch(/expected scrypt\$<N>/);
    expect(passwordHashProblem('scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toMatch(/N: expected a power of two/);
    expect(passwordHashProblem('scrypt$4194304$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toMatch(/N: expected/);
    expect(() => parsePasswordHash('scrypt$1024$0$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toThrow(/r: expected 1 to 32, got 0/);
    await expect(hashPassword('')).rejects.toThrow(/non-empty/);
    await expect(verifyPassword('x', 'scrypt$bad')).rejects.toThrow(RangeError);
  });
});

/**
 * MQTT user passwords (docs/security.md §Who may connect): stored only as scrypt hashes, in the PHC-like form
 *
 *     scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>
 *
 * N is the CPU/memory cost (a power of two), r the block size, p the parallelism; salt 16 random bytes, hash 32
 * bytes. The defaults (N=16384, r=8, p=1: 16 MiB, ~50 ms on a Pi 4) follow RFC 7914 §2's interactive-login figures.
 * Hashing and verifying use the asynchronous node:crypto scrypt, so a CONNECT storm does not block the event loop;
 * comparison is constant-time. `hash-password` (CLI) prints hashPassword's result.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export interface ScryptParams {
  /** CPU/memory cost, a power of two ≥ 2 (default 16384). */
  readonly N: number;
  /** Block size (default 8). */
  readonly r: number;
  /** Parallelism (default 1). */
  readonly p: number;
}

export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { N: 16_384, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds a config file cannot exceed: a hash string must not be able to make one CONNECT cost a gigabyte. */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY_BYTES = 256 * 1024 * 1024;

const FORMAT = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/]{16,88}={0,2})\$([A-Za-z0-9+/]{16,88}={0,2})$/;

export interface ParsedPasswordHash extends ScryptParams {
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** Why a string is not a valid password hash, or undefined when it is (config validation uses this). */
export function passwordHashProblem(encoded: string): string | undefined {
  const m = FORMAT.exec(encoded);
  if (!m) return 'expected scrypt$<N>$<r>$<p>$<salt base64>$<hash base64> (see `inbetweenies-gateway hash-password`)';
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const problem = paramsProblem(params);
  if (problem) return problem;
  const salt = Buffer.from(m[4] ?? '', 'base64');
  const hash = Buffer.from(m[5] ?? '', 'base64');
  if (salt.length < 8) return `salt: expected at least 8 bytes, got ${salt.length}`;
  if (hash.length < 16 || hash.length > 64) return `hash: expected 16 to 64 bytes, got ${hash.length}`;
  return undefined;
}

function paramsProblem({ N, r, p }: ScryptParams): string | undefined {
  if (!Number.isInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0) return `N: expected a power of two from 2 to ${MAX_N}, got ${N}`;
  if (!Number.isInteger(r) || r < 1 || r > MAX_R) return `r: expected 1 to ${MAX_R}, got ${r}`;
  if (!Number.isInteger(p) || p < 1 || p > MAX_P) return `p: expected 1 to ${MAX_P}, got ${p}`;
  if (memoryOf({ N, r, p }) > MAX_MEMORY_BYTES) return `N*r: needs ${memoryOf({ N, r, p })} bytes, more than ${MAX_MEMORY_BYTES}`;
  return undefined;
}

/** Parses an encoded hash; throws RangeError saying what was expected. */
export function parsePasswordHash(encoded: string): ParsedPasswordHash {
  const problem = passwordHashProblem(encoded);
  if (problem) throw new RangeError(`password hash: ${problem}`);
  const parts = encoded.split('$');
  return {
    N: Number(parts[1]),
    r: Number(parts[2]),
    p: Number(parts[3]),
    salt: Buffer.from(parts[4] ?? '', 'base64'),
    hash: Buffer.from(parts[5] ?? '', 'base64'),
  };
}

function memoryOf({ N, r, p }: ScryptParams): number {
  return 128 * N * r * (p + 1);
}

function derive(password: Buffer | string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, { N: params.N, r: params.r, p: params.p, maxmem: memoryOf(params) + 1024 * 1024 }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) throw new RangeError('password: expected a non-empty string');
  const problem = paramsProblem(params);
  if (problem) throw new RangeError(`scrypt parameters: ${problem}`);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, HASH_BYTES, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** True when `password` matches `encoded`; a malformed `encoded` throws RangeError. Constant-time comparison. */
export async function verifyPassword(password: Buffer | string, encoded: string | ParsedPasswordHash): Promise<boolean> {
  const parsed = typeof encoded === 'string' ? parsePasswordHash(encoded) : encoded;
  const candidate = await derive(password, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(candidate, parsed.hash);
}

/**
 * The opaque pagination cursor (docs/protocol.md §Pagination; the format fills a seed gap).
 * base64url of JSON {v, w, h, p, s, m}: v version, w the sync's last_sync (µs, null for a full sync), h its
 * watermark H (µs), p/s the priority and seq of the last change sent, m a MAC over the rest and the client id keyed
 * by a per-database server key, so a cursor is opaque, cannot be forged, and is valid only for the client it was
 * issued to. It is validated with zod on the way back in.
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { ProtocolError } from '../errors.js';
import type { Micros } from '../protocol/index.js';

const Micro = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const CursorSchema = z.strictObject({
  v: z.literal(1),
  w: Micro.nullable(),
  h: Micro,
  p: z.number().int().min(0).max(15),
  s: Micro,
  /** The home digest as of h (convergence digest extension), when the client asked for it. */
  d: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  m: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
});

export interface CursorState {
  readonly w: Micros | null;
  readonly h: Micros;
  readonly p: number;
  readonly s: Micros;
  readonly d?: string;
}

function mac(key: string, clientId: string, c: CursorState): string {
  return createHmac('sha256', key)
    .update(`${clientId}\n${c.w ?? 'null'}\n${c.h}\n${c.p}\n${c.s}${c.d === undefined ? '' : `\n${c.d}`}`)
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

export function encodeCursor(key: string, clientId: string, c: CursorState): string {
  const body = { v: 1, w: c.w, h: c.h, p: c.p, s: c.s, ...(c.d === undefined ? {} : { d: c.d }), m: mac(key, clientId, c) };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

/** Decodes and checks a cursor; BAD_REQUEST when malformed, forged, or issued to another client. */
export function decodeCursor(key: string, clientId: string, text: string): CursorState {
  let raw: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new Error('not base64url');
    raw = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new ProtocolError('BAD_REQUEST', 'cursor: malformed (not base64url JSON)');
  }
  const parsed = CursorSchema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError('BAD_REQUEST', 'cursor: malformed');
  const c = parsed.data;
  const expected = mac(key, clientId, c);
  if (expected !== c.m) throw new ProtocolError('BAD_REQUEST', 'cursor: not issued to this client');
  if (c.w !== null && c.w > c.h) throw new ProtocolError('BAD_REQUEST', 'cursor: inconsistent');
  return { w: c.w, h: c.h, p: c.p, s: c.s, ...(c.d === undefined ? {} : { d: c.d }) };
}

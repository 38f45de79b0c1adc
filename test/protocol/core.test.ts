import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import {
  formatTimestamp,
  parseTimestamp,
  resolveLastWriteWins,
  classifyConflict,
  signRequest,
  verifyRequest,
  signResponse,
  verifyResponse,
  decodeGzip,
  encodeBody,
  normaliseEntityType,
  SyncRequestSchema,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIMESTAMP,
} from '../../src/protocol/index.js';

describe('timestamps', () => {
  it('accepts Z, offsets and naive strings as UTC', () => {
    const z = parseTimestamp('2024-01-15T10:30:00Z');
    expect(z).toBe(Date.UTC(2024, 0, 15, 10, 30, 0) * 1000);
    expect(parseTimestamp('2024-01-15T10:30:00+00:00')).toBe(z);
    expect(parseTimestamp('2024-01-15T12:30:00+02:00')).toBe(z);
    expect(parseTimestamp('2024-01-15T05:00:00-0530')).toBe(z);
    expect(parseTimestamp('2024-01-15T10:30:00')).toBe(z);
    expect(parseTimestamp('2024-01-15 10:30:00.123456')).toBe(z! + 123456);
  });
  it('rejects what is not a timestamp', () => {
    for (const bad of ['', 'yesterday', '2024-13-01T00:00:00Z', '2024-02-31T00:00:00Z', '2024-01-15T25:00:00Z', '2024-01-15T10:30:00+99:00']) {
      expect(parseTimestamp(bad)).toBeUndefined();
    }
  });
  it('emits UTC with microseconds and round-trips', () => {
    const us = Date.UTC(2024, 0, 15, 10, 30, 0, 5) * 1000 + 7;
    expect(formatTimestamp(us)).toBe('2024-01-15T10:30:00.005007Z');
    expect(parseTimestamp(formatTimestamp(us))).toBe(us);
  });
});

describe('last-write-wins (seed §Conflict Resolution)', () => {
  const v = (s: number, syncId: string, deleted = false) => ({ updatedAt: s * 1_000_000, syncId, deleted });
  it('newer updated_at wins outside the 1 s window', () => {
    expect(resolveLastWriteWins(v(10, 'z'), v(12, 'a'))).toEqual({ winner: 'client', reason: 'newer_on_client' });
    expect(resolveLastWriteWins(v(12, 'a'), v(10, 'z'))).toEqual({ winner: 'server', reason: 'newer_on_server' });
    expect(resolveLastWriteWins(v(10, 'z'), v(11, 'a')).winner).toBe('client');
  });
  it('within 1 s the higher sync_id wins, even when older', () => {
    expect(resolveLastWriteWins(v(10.5, 'a'), v(10, 'b')).winner).toBe('client');
    expect(resolveLastWriteWins(v(10, 'b'), v(10.9, 'a')).winner).toBe('server');
  });
  it('within 1 s a delete beats an update', () => {
    expect(resolveLastWriteWins(v(10, 'z'), v(10.2, 'a', true))).toEqual({ winner: 'client', reason: 'delete_wins' });
    expect(resolveLastWriteWins(v(10.2, 'a', true), v(10, 'z'))).toEqual({ winner: 'server', reason: 'delete_wins' });
  });
  it('classifies conflicts', () => {
    expect(classifyConflict({ deleted: false }, { deleted: false, operation: 'update' })).toBe('UPDATE_UPDATE');
    expect(classifyConflict({ deleted: true }, { deleted: false, operation: 'update' })).toBe('UPDATE_DELETE');
    expect(classifyConflict({ deleted: false }, { deleted: true, operation: 'delete' })).toBe('UPDATE_DELETE');
    expect(classifyConflict({ deleted: false }, { deleted: false, operation: 'create' })).toBe('CREATE_CREATE');
  });
});

describe('hmac', () => {
  const base = { secret: 's3cret', method: 'POST', path: '/api/v1/sync/push', clientId: 'gw1', body: Buffer.from('{"a":1}') };
  it('verifies a signed request and refuses tampering and staleness', () => {
    const headers = signRequest({ ...base, timestampSeconds: 1000, nonce: 'abcdefghijklmnop' });
    const h = { timestamp: headers[HEADER_TIMESTAMP], nonce: headers[HEADER_NONCE], signature: headers[HEADER_SIGNATURE] };
    expect(verifyRequest({ ...base, headers: h, nowSeconds: 1100 })).toEqual({ ok: true });
    expect(verifyRequest({ ...base, body: Buffer.from('{"a":2}'), headers: h, nowSeconds: 1100 })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyRequest({ ...base, path: '/api/v1/sync/ack', headers: h, nowSeconds: 1100 })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyRequest({ ...base, secret: 'other', headers: h, nowSeconds: 1100 })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyRequest({ ...base, headers: h, nowSeconds: 1301 })).toEqual({ ok: false, reason: 'stale' });
    expect(verifyRequest({ ...base, headers: { ...h, signature: undefined }, nowSeconds: 1100 })).toEqual({ ok: false, reason: 'missing' });
  });
  it('binds a response to the request nonce', () => {
    const body = Buffer.from('{"ok":true}');
    const headers = signResponse({ secret: 'k', status: 200, requestNonce: 'n1', body, timestampSeconds: 5 });
    const h = { timestamp: headers[HEADER_TIMESTAMP], signature: headers[HEADER_SIGNATURE] };
    expect(verifyResponse({ secret: 'k', status: 200, requestNonce: 'n1', body, headers: h })).toEqual({ ok: true });
    expect(verifyResponse({ secret: 'k', status: 200, requestNonce: 'n2', body, headers: h }).ok).toBe(false);
  });
});

describe('gzip codec', () => {
  it('compresses only above 1 KB and round-trips', async () => {
    expect((await encodeBody(Buffer.from('x'.repeat(1024)))).gzipped).toBe(false);
    const big = Buffer.from('x'.repeat(5000));
    const enc = await encodeBody(big);
    expect(enc.gzipped).toBe(true);
    expect((await decodeGzip(enc.bytes, 10_000)).equals(big)).toBe(true);
  });
  it('refuses a bomb with PAYLOAD_TOO_LARGE and garbage with BAD_REQUEST', async () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    await expect(decodeGzip(bomb, 1024 * 1024)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expect(decodeGzip(Buffer.from('not gzip'), 1024)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('messages', () => {
  it('accepts both entity type spellings; a sync_request may name others (ignored by the server), within bounds', () => {
    expect(normaliseEntityType('devices')).toBe('device');
    expect(normaliseEntityType('toasters')).toBeUndefined();
    expect(SyncRequestSchema.safeParse({ type: 'sync_request', client_id: 'c', entity_types: ['devices', 'entity_state'] }).success).toBe(true);
    expect(SyncRequestSchema.safeParse({ type: 'sync_request', client_id: 'c', entity_types: ['users'] }).success).toBe(true);
    expect(SyncRequestSchema.safeParse({ type: 'sync_request', client_id: 'c', entity_types: ['x'.repeat(65)] }).success).toBe(false);
    expect(SyncRequestSchema.safeParse({ type: 'sync_request', client_id: 'c', entity_types: ['\ud800'] }).success).toBe(false);
  });
});

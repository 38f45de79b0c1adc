/** The synchronous path of the gzip codec for small bodies keeps every promise of the async one (caps, errors). */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeGzip, encodeBody, SYNC_CODEC_MAX_BYTES } from '../../src/protocol/index.js';

describe('gzip codec, small-body synchronous path', () => {
  it('round-trips bodies on both sides of SYNC_CODEC_MAX_BYTES', async () => {
    for (const size of [2_000, SYNC_CODEC_MAX_BYTES, SYNC_CODEC_MAX_BYTES + 1, 300_000]) {
      const raw = Buffer.from(Array.from({ length: size }, (_, i) => `item-${i},`).join('').slice(0, size));
      expect(raw.length).toBe(size);
      const enc = await encodeBody(raw);
      expect(enc.gzipped).toBe(true);
      expect((await decodeGzip(enc.bytes, 1_000_000)).equals(raw)).toBe(true);
    }
  });

  it('a small input that inflates past the synchronous cap is still inflated up to maxBytes', async () => {
    const raw = Buffer.alloc(SYNC_CODEC_MAX_BYTES * 4, 'a');
    const packed = gzipSync(raw);
    expect(packed.length).toBeLessThan(SYNC_CODEC_MAX_BYTES);
    expect((await decodeGzip(packed, raw.length)).equals(raw)).toBe(true);
  });

  it('refuses a bomb with PAYLOAD_TOO_LARGE whether the cap is below or above the synchronous cap', async () => {
    const bomb = gzipSync(Buffer.alloc(8 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(SYNC_CODEC_MAX_BYTES);
    await expect(decodeGzip(bomb, 10_000)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expect(decodeGzip(bomb, 1024 * 1024)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('refuses corrupt gzip with BAD_REQUEST on the synchronous path', async () => {
    const packed = gzipSync(randomBytes(3_000));
    packed[20] = (packed[20] ?? 0) ^ 0xff;
    await expect(decodeGzip(packed, 1_000_000)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

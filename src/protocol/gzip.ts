/**
 * gzip codec (seed §Compression "Gzip compression for payloads >1KB"; design.md §gzip). Inflation is capped so a
 * compressed bomb fails fast with PAYLOAD_TOO_LARGE instead of exhausting memory.
 */
import { gunzip, gzip, constants } from 'node:zlib';
import { promisify } from 'node:util';
import { ProtocolError } from '../errors.js';

export const GZIP_THRESHOLD_BYTES = 1024;

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface EncodedBody {
  readonly bytes: Buffer;
  readonly gzipped: boolean;
}

/** Compresses `raw` when it is larger than the threshold and compression actually saves bytes. */
export async function encodeBody(raw: Buffer, thresholdBytes = GZIP_THRESHOLD_BYTES): Promise<EncodedBody> {
  if (raw.length <= thresholdBytes) return { bytes: raw, gzipped: false };
  const packed = await gzipAsync(raw, { level: 6 });
  return packed.length < raw.length ? { bytes: packed, gzipped: true } : { bytes: raw, gzipped: false };
}

/** Inflates a gzip body, refusing to produce more than `maxBytes` (a bomb gets PAYLOAD_TOO_LARGE, 413). */
export async function decodeGzip(bytes: Buffer, maxBytes: number): Promise<Buffer> {
  try {
    return await gunzipAsync(bytes, { maxOutputLength: maxBytes, finishFlush: constants.Z_SYNC_FLUSH });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new ProtocolError('PAYLOAD_TOO_LARGE', `inflated body exceeds ${maxBytes} bytes`);
    }
    throw new ProtocolError('BAD_REQUEST', 'body is not valid gzip', { cause: err });
  }
}

/** Reads the `Content-Encoding` header: identity or gzip, anything else is unsupported. */
export function contentEncodingOf(header: string | string[] | undefined): 'gzip' | 'identity' | 'unsupported' {
  const value = (Array.isArray(header) ? header.join(',') : header ?? '').trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  return 'unsupported';
}

export function acceptsGzip(header: string | string[] | undefined): boolean {
  const value = (Array.isArray(header) ? header.join(',') : header ?? '').toLowerCase();
  return value.split(',').some((part) => {
    const [name, ...params] = part.trim().split(';');
    if (name !== 'gzip' && name !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

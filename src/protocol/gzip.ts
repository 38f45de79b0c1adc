/**
 * gzip codec (seed §Compression "Gzip compression for payloads >1KB"; docs/protocol.md §Compression). Inflation is
 * capped so a compressed bomb fails fast with PAYLOAD_TOO_LARGE instead of exhausting memory.
 */
import { gunzip, gunzipSync, gzip, gzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { ProtocolError } from '../errors.js';

export const GZIP_THRESHOLD_BYTES = 1024;

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/**
 * Bodies up to this size are (de)compressed synchronously: for a few KB the thread-pool round trip of the async
 * zlib calls costs more than the work itself (≈ 0.05 ms for a 5 KB push), and on a busy 2-core Pi each hop waits for
 * a thread to be scheduled. Synchronous inflation is also capped at this many output bytes, so the event loop is
 * never blocked for long; a body that inflates further is inflated again asynchronously against the real cap.
 */
export const SYNC_CODEC_MAX_BYTES = 64 * 1024;

export interface EncodedBody {
  readonly bytes: Buffer;
  readonly gzipped: boolean;
}

/** Compresses `raw` when it is larger than the threshold and compression actually saves bytes. */
export async function encodeBody(raw: Buffer, thresholdBytes = GZIP_THRESHOLD_BYTES): Promise<EncodedBody> {
  if (raw.length <= thresholdBytes) return { bytes: raw, gzipped: false };
  const packed = raw.length <= SYNC_CODEC_MAX_BYTES ? gzipSync(raw, { level: 6 }) : await gzipAsync(raw, { level: 6 });
  return packed.length < raw.length ? { bytes: packed, gzipped: true } : { bytes: raw, gzipped: false };
}

/**
 * Inflates a gzip body, refusing to produce more than `maxBytes` (a bomb gets PAYLOAD_TOO_LARGE, 413). The stream
 * must be complete: a body cut short (e.g. without its 8-byte CRC and length trailer), with a bad checksum or with
 * bytes after it is BAD_REQUEST (RFC 1952 §2.3.1: the trailer is what proves the data intact).
 */
export async function decodeGzip(bytes: Buffer, maxBytes: number): Promise<Buffer> {
  try {
    if (bytes.length <= SYNC_CODEC_MAX_BYTES) {
      const small = inflateSmall(bytes, maxBytes);
      if (small !== undefined) return small;
    }
    return await gunzipAsync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    if (isTooLarge(err)) {
      throw new ProtocolError('PAYLOAD_TOO_LARGE', `inflated body exceeds ${maxBytes} bytes`, { reason: 'inflated' });
    }
    throw new ProtocolError('BAD_REQUEST', `body is not valid gzip (${gzipProblem(err)})`, { cause: err, reason: 'gzip' });
  }
}

function gzipProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.slice(0, 100);
}

/** Synchronous inflation capped at SYNC_CODEC_MAX_BYTES; undefined when the output is larger but maxBytes allows it. */
function inflateSmall(bytes: Buffer, maxBytes: number): Buffer | undefined {
  const cap = Math.min(maxBytes, SYNC_CODEC_MAX_BYTES);
  try {
    return gunzipSync(bytes, { maxOutputLength: cap });
  } catch (err) {
    if (cap < maxBytes && isTooLarge(err)) return undefined;
    throw err;
  }
}

function isTooLarge(err: unknown): boolean {
  return (err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError;
}

/** Reads the `Content-Encoding` header: identity or gzip, anything else is unsupported. */
export function contentEncodingOf(header: string | string[] | undefined): 'gzip' | 'identity' | 'unsupported' {
  const value = (Array.isArray(header) ? header.join(',') : header ?? '').trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  return 'unsupported';
}

/**
 * Whether `Accept-Encoding` allows a gzip response (RFC 9110 §12.5.3): the `gzip` (or `x-gzip`) entry decides when
 * there is one — `gzip;q=0` refuses it even next to `*` —, otherwise `*`; a q-value of 0 means "not acceptable".
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const value = (Array.isArray(header) ? header.join(',') : header ?? '').toLowerCase();
  let gzipQ: number | undefined;
  let anyQ: number | undefined;
  for (const part of value.split(',')) {
    const [rawName = '', ...params] = part.split(';');
    const name = rawName.trim();
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : qValue(qParam.slice(2));
    if (name === 'gzip' || name === 'x-gzip') gzipQ = Math.max(gzipQ ?? 0, q);
    else if (name === '*') anyQ = Math.max(anyQ ?? 0, q);
  }
  return (gzipQ ?? anyQ ?? 0) > 0;
}

/** RFC 9110 §12.4.2 qvalue: 0 to 1 with up to three decimals; anything else reads as 0 (not acceptable). */
function qValue(text: string): number {
  const t = text.trim();
  return /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(t) ? Number(t) : 0;
}

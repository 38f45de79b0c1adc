/**
 * Reading an HTTP request body with a hard cap — shared by the sync server (src/server/http/io.ts) and the daemon's
 * control listener (src/daemon/http.ts). On overflow reading stops at once and nothing more is buffered; the caller
 * answers 413 (and should close the connection). Failures are typed by `code` so each stack maps them to its own
 * error answers.
 */
import type { IncomingMessage } from 'node:http';

export type BodyErrorCode = 'PAYLOAD_TOO_LARGE' | 'BAD_REQUEST';

export class BodyError extends Error {
  readonly code: BodyErrorCode;
  constructor(code: BodyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BodyError';
    this.code = code;
  }
}

/** Reads the whole body, refusing more than `maxBytes` (a declared Content-Length over it is refused before reading). */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(new BodyError('PAYLOAD_TOO_LARGE', `body of ${declared} bytes exceeds ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        req.pause();
        reject(new BodyError('PAYLOAD_TOO_LARGE', `body exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new BodyError('BAD_REQUEST', `request body could not be read: ${err.message}`, { cause: err }));
    };
    const onClose = (): void => {
      cleanup();
      reject(new BodyError('BAD_REQUEST', 'request closed before its body was complete'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

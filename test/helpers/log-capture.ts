/** A real pino logger whose JSON lines are kept in memory, parsed, for tests that assert on what was logged. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';

export interface CapturedLog {
  readonly logger: Logger;
  /** Every line written so far, parsed (pino writes synchronously to this stream). */
  readonly lines: Array<Record<string, unknown>>;
}

export function captureLog(level: 'trace' | 'debug' | 'info' | 'warn' = 'info'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}

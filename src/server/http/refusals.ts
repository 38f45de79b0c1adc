/**
 * Refused requests are counted (metrics: code and reason) and logged rate-limited — at most one line per code and
 * reason per interval, carrying the count since the previous line and the client id and address of the latest — so
 * hundreds of 401/413/429 or replays are visible at the default level without flooding the journal. Everything
 * taken from the request is capped and made well-formed before it reaches a log line.
 */
import type { ProtocolError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { RateLimitedLog } from '../../util/rate-limited-log.js';
import type { ServerMetrics } from '../metrics.js';

/** Codes a well-behaved client meets in normal operation: logged at info, not warn. */
const ROUTINE = new Set(['AUTH_EXPIRED', 'INVALID_SYNC_STATE', 'NOT_FOUND', 'METHOD_NOT_ALLOWED']);

/** At most `max` UTF-16 units of attacker-controlled text, well-formed, for logs. */
export function capText(text: string | undefined, max: number): string | undefined {
  if (text === undefined) return undefined;
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.toWellFormed();
}

export interface RefusalContext {
  readonly endpoint: string;
  readonly path: string | undefined;
  readonly address: string;
  /** The client the request was authenticated as, or the client id it claimed (capped). */
  readonly client: string | undefined;
}

export class Refusals {
  private readonly warn: RateLimitedLog;
  private readonly info: RateLimitedLog;

  constructor(
    private readonly metrics: ServerMetrics,
    options: { logger: Logger; intervalMs: number; now: () => number },
  ) {
    this.warn = new RateLimitedLog({ logger: options.logger, intervalMs: options.intervalMs, level: 'warn', now: options.now });
    this.info = new RateLimitedLog({ logger: options.logger, intervalMs: options.intervalMs, level: 'info', now: options.now });
  }

  record(err: ProtocolError, ctx: RefusalContext): void {
    this.metrics.refusals.inc({ code: err.code, reason: err.reason });
    const log = ROUTINE.has(err.code) ? this.info : this.warn;
    log.record(`${err.code}/${err.reason}`, 'request refused', {
      code: err.code,
      endpoint: ctx.endpoint,
      path: capText(ctx.path, 128),
      client: capText(ctx.client, 64),
      address: capText(ctx.address, 64),
      detail: capText(err.message, 200),
    });
  }

  /** Logs what was counted but not yet reported (server close). */
  flush(): void {
    this.warn.flush('refused requests since the last line');
    this.info.flush('refused requests since the last line');
  }
}

/**
 * Typed errors with stable codes (the undici style): callers branch on `code`, never on message text.
 * Wire codes come from the seed §Error Codes plus those this profile adds (docs/protocol.md §Errors).
 */
export type ErrorCode =
  // seed §Error Codes
  | 'SYNC_CONFLICT'
  | 'INVALID_SYNC_STATE'
  | 'RATE_LIMITED'
  | 'AUTH_EXPIRED'
  // this profile's additions (docs/protocol.md §Errors)
  | 'BAD_REQUEST'
  | 'BAD_SIGNATURE'
  | 'FORBIDDEN'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'INTERNAL'
  // live waits (docs/protocol.md §Live waits, an extension)
  | 'TOO_MANY_WAITS'
  | 'SERVER_BUSY'
  // per-change rejection codes inside a sync_result
  | 'UNKNOWN_ENTITY_TYPE'
  | 'INVALID_ENTITY'
  // local (never on the wire)
  | 'CONFIG_INVALID'
  | 'TRANSPORT'
  | 'TIMEOUT'
  | 'BAD_RESPONSE'
  | 'STORE'
  /** The gateway's HTTP listener: a Host header that is not loopback, the local address or an allowed name. */
  | 'HOST_NOT_ALLOWED'
  /** A PUBLISH the gateway could not keep (store commit failed, stopping): no PUBACK, the device sends it again. */
  | 'NOT_ACKNOWLEDGED'
  /** A file holding secrets (the store with its tokens, a config with the client secret) is readable by others. */
  | 'INSECURE_PERMISSIONS'
  | 'TLS_PIN_MISMATCH';

export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  SYNC_CONFLICT: 409,
  INVALID_SYNC_STATE: 409,
  RATE_LIMITED: 429,
  AUTH_EXPIRED: 401,
  BAD_REQUEST: 400,
  BAD_SIGNATURE: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  TOO_MANY_WAITS: 429,
  SERVER_BUSY: 503,
  UNKNOWN_ENTITY_TYPE: 422,
  INVALID_ENTITY: 422,
  CONFIG_INVALID: 500,
  TRANSPORT: 502,
  TIMEOUT: 504,
  BAD_RESPONSE: 502,
  STORE: 500,
  HOST_NOT_ALLOWED: 403,
  NOT_ACKNOWLEDGED: 503,
  INSECURE_PERMISSIONS: 500,
  TLS_PIN_MISMATCH: 502,
};

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options?.status ?? HTTP_STATUS_BY_CODE[code];
  }
}

/**
 * An error the server answers with; `retryAfterSeconds` goes out as `Retry-After` and `retry_after`. `reason` is a
 * short fixed word (never input text) that refines the code in metrics and logs, e.g. BAD_SIGNATURE `replayed`.
 */
export class ProtocolError extends GatewayError {
  readonly retryAfterSeconds: number | undefined;
  readonly reason: string;
  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number; status?: number; reason?: string },
  ) {
    super(code, message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.reason = options?.reason ?? code.toLowerCase();
  }
}

/** An error response received by the sync client (HTTP status + the server's error body). */
export class SyncHttpError extends GatewayError {
  readonly retryAfterSeconds: number | undefined;
  /** The server refused the request's gzip body as such (docs/protocol.md §Compatibility): worth sending plain. */
  readonly gzipRefusal: boolean;
  constructor(code: ErrorCode, message: string, status: number, retryAfterSeconds?: number, gzipRefusal = false) {
    super(code, message, { status });
    this.retryAfterSeconds = retryAfterSeconds;
    this.gzipRefusal = gzipRefusal;
  }
}

export class ConfigError extends GatewayError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], source: string) {
    super('CONFIG_INVALID', `invalid configuration in ${source}:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/**
 * Server configuration: a zod schema that yields both the validator and the type, loaded from YAML
 * (config/server.example.yaml). Every problem is listed at once with its path (ConfigError); unknown keys are
 * refused so a typo never silently falls back to a default.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { describeIssues } from '../protocol/index.js';
import { parseProxyEntry } from './http/client-address.js';

const PositiveInt = z.number().int().positive();
const ProxyEntry = z.string().refine((v) => parseProxyEntry(v) !== undefined, {
  message: 'expected an IP address or a CIDR range such as 10.0.0.0/8 or ::1',
});

export const ServerConfigSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8000),
  /** The SQLite store's directory (the default store); unused when `database.url` is set. */
  dataDir: z.string().min(1).default('./data'),
  /**
   * PostgreSQL instead of SQLite (docs/operations.md §The sync server on PostgreSQL): any number of server instances
   * on one database serve as one server. INBETWEENIES_DATABASE_URL or `--database-url` set it too.
   */
  database: z
    .strictObject({
      url: z
        .string()
        .regex(/^postgres(ql)?:\/\//, { message: 'expected postgres://user:password@host:port/database' })
        .optional(),
      /** Connections of this instance's pool. */
      poolSize: PositiveInt.max(1000).default(10),
    })
    .prefault({}),
  /** seed §Batching "Max 1000 entities per sync cycle": changes per sync_delta page. */
  pageSize: PositiveInt.max(100_000).default(1000),
  /** Changes accepted in one sync_push; more gets 413 PAYLOAD_TOO_LARGE. */
  maxPushChanges: PositiveInt.max(100_000).default(1000),
  /** sync_push body cap on the wire (possibly compressed); the other endpoints have small fixed caps (endpoints.ts). */
  maxBodyBytes: PositiveInt.max(256 * 1024 * 1024).default(4 * 1024 * 1024),
  /** sync_push body cap after gzip inflation (docs/protocol.md §Compression: a bomb gets 413). */
  maxInflatedBytes: PositiveInt.max(256 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Memory bounds across requests (docs/protocol.md §Limits): beyond them 503 SERVER_BUSY + Retry-After. */
  limits: z
    .strictObject({
      /** Request bodies held in memory at once, all requests together. */
      bodyMemoryBytes: PositiveInt.default(16 * 1024 * 1024),
      /** Compressed bodies inflated and parsed at once. */
      decodeConcurrency: PositiveInt.max(64).default(2),
      /** Compressed bodies waiting for a decode slot. */
      decodeQueue: z.number().int().min(0).max(10_000).default(64),
    })
    .prefault({}),
  /**
   * Reverse proxies whose X-Forwarded-For is believed (addresses or CIDR ranges). The client address (auth rate limit,
   * logs) is the first untrusted hop from the right; with none, X-Forwarded-For is ignored.
   */
  trustedProxies: z.array(ProxyEntry).max(256).default([]),
  /** HTTPS on the listener itself (seed §Data Integrity "TLS for transport encryption"); SIGHUP reloads the files. */
  tls: z
    .strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
    })
    .optional(),
  /** Prometheus GET /metrics on its own plain-HTTP listener (never on the public one); off by default. */
  metrics: z
    .strictObject({
      enabled: z.boolean().default(false),
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(9181),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      accessTtlSeconds: PositiveInt.default(3600),
      refreshTtlSeconds: PositiveInt.default(30 * 24 * 3600),
    })
    .prefault({}),
  hmac: z
    .strictObject({
      /** Unsigned requests are refused with BAD_SIGNATURE when true. */
      required: z.boolean().default(false),
      /** docs/protocol.md §HMAC: ±300 s. */
      windowSeconds: PositiveInt.max(3600).default(300),
    })
    .prefault({}),
  rateLimit: z
    .strictObject({
      ratePerSecond: z.number().positive().default(20),
      burst: PositiveInt.default(60),
    })
    .prefault({}),
  /**
   * Live waits (an extension of the seed, docs/protocol.md §Live waits): a sync_request with `wait` whose delta is
   * empty is held until another client commits in its home, or until the wait (capped here) runs out.
   */
  live: z
    .strictObject({
      /** false: `wait` is ignored and health advertises no live_wait capability (clients poll, seed §Polling). */
      enabled: z.boolean().default(true),
      /** Cap on a request's `wait`; below common proxy idle timeouts (60 s and more). */
      maxWaitSeconds: z.number().positive().max(300).default(25),
      /** Held waits per client at once; one more is 429 TOO_MANY_WAITS. */
      maxPerClient: PositiveInt.max(16).default(2),
      /** Held waits per server process; one more is 503 SERVER_BUSY with Retry-After. */
      maxTotal: PositiveInt.max(1_000_000).default(10_000),
    })
    .prefault({}),
  /**
   * The clamp (an extension, docs/protocol.md §Clamp): for ordering, a pushed `updated_at` later than the server's
   * receive time plus `toleranceSeconds` counts as that time (the claimed time is kept and returned).
   */
  clamp: z
    .strictObject({
      enabled: z.boolean().default(true),
      toleranceSeconds: z.number().min(0).max(3600).default(5),
    })
    .prefault({}),
  /** Sync history (an extension, docs/protocol.md §Sync history): losing and overwritten versions, per home. */
  history: z
    .strictObject({
      /** Entries older than this are purged (with the tombstone purge job). */
      retentionSeconds: PositiveInt.default(30 * 24 * 3600),
      /** Entries kept per entity, the newest. */
      maxPerEntity: PositiveInt.max(100_000).default(200),
      /** Largest page `GET /api/v1/history` returns. */
      maxPageSize: PositiveInt.max(1000).default(100),
    })
    .prefault({}),
  tombstones: z
    .strictObject({
      retentionSeconds: PositiveInt.default(30 * 24 * 3600),
      purgeIntervalSeconds: PositiveInt.default(3600),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** Refused requests are logged at most once per code and reason this often, with the count since. */
      refusalIntervalSeconds: z.number().min(0).max(3600).default(10),
    })
    .prefault({}),
});

export type ServerConfig = z.infer<typeof ServerConfigSchema>;
/** What a caller may pass: every field optional, nested objects partial. */
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;

/** Validates a config object; throws ConfigError listing every problem. */
export function parseServerConfig(input: unknown, source = 'server config'): ServerConfig {
  const parsed = ServerConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error), source);
  return parsed.data;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge of plain objects; `over` wins, undefined values in `over` are ignored. */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    out[key] = mergeConfig(base[key], value);
  }
  return out;
}

/**
 * Loads the YAML file at `path` (or only defaults when `path` is undefined), applies `overrides` (CLI flags win over
 * the file) and validates. YAML syntax errors and schema problems are all reported in one ConfigError.
 */
export function loadServerConfig(path: string | undefined, overrides: ServerConfigInput = {}): ServerConfig {
  let fromFile: unknown = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError([`cannot read file: ${(err as Error).message}`], path);
    }
    const doc = parseDocument(text);
    if (doc.errors.length > 0) {
      throw new ConfigError(doc.errors.map((e) => `yaml: ${e.message.split('\n')[0] ?? e.message}`), path);
    }
    fromFile = doc.toJS() ?? {};
    if (!isPlainObject(fromFile)) throw new ConfigError(['(root): expected a mapping of settings'], path);
  }
  return parseServerConfig(mergeConfig(fromFile, overrides), path ?? 'defaults');
}

/**
 * The gateway's configuration: one YAML file checked against one zod schema that yields both the runtime check and
 * the type. Every problem is reported at once with its path, its line in the file, what is allowed and what was
 * given (src/config/explain.ts). Precedence (lowest first): built-in defaults < YAML file < environment variables
 * (for secrets) < command-line flags.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AdaptersConfigSchema } from '../ingest/adapters/config.js';
import { MqttConfigSchema, redactMqttConfig } from '../broker/config.js';
import { explainIssues, GatewayConfigError, parseYamlSource, type ConfigProblem, type YamlSource } from './explain.js';
import { parseCron, zonedTime } from '../util/cron.js';

const Port = z.number().int().min(0).max(65535);
const Cron = z.string().refine((v) => parseCron(v).ok, { message: 'expected a cron expression such as "30 3 * * 0" (minute hour day month weekday)' });
/** SHA-256 of a server key's SPKI: 44 base64 characters (padded) or 64 hex digits (docs/security.md §Sync server). */
const PinSha256 = z.string().regex(/^(?:[A-Za-z0-9+/]{43}=|[0-9a-fA-F]{64})$/, 'expected a SHA-256 as 44 base64 or 64 hex characters');
const TimeZone = z.string().min(1).refine(
  (v) => {
    try {
      zonedTime(v);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an IANA time zone such as "Europe/Berlin"' },
);
const TopicLevel = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - (one MQTT topic level)');
const HostName = z.string().min(1).max(253).regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/, 'a host name or address, without port or scheme');
const Level = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const GatewayConfigSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  log: z.strictObject({ level: Level.default('info'), pretty: z.boolean().optional() }).prefault({}),
  /** The store (src/store/): where its writer runs (docs/operations.md §Store). */
  store: z
    .strictObject({
      /** `worker`: commits and their fsync on a thread of their own (the event loop never waits); `inline`: on the main thread (one isolate less). */
      writer: z.enum(['worker', 'inline']).default('worker'),
    })
    .prefault({}),
  /** Embedded broker (listeners, users, ACLs, limits) or external broker: src/broker/config.ts. */
  mqtt: MqttConfigSchema.prefault({}),
  ingest: z
    .strictObject({
      groupCommitWindowMs: z.number().min(0).max(1000).default(4),
      /** QoS 0 messages (nothing to acknowledge) are committed without fsync at most this long after arriving. */
      qos0WindowMs: z.number().min(0).max(10_000).default(1000),
      maxBatch: z.number().int().min(1).max(100_000).default(2000),
      native: z.strictObject({ enabled: z.boolean().default(true), baseTopic: z.string().min(1).default('devices') }).prefault({}),
      /** Device ecosystems: zigbee2mqtt, tasmota, shelly, homeassistant, generic; each on by default. */
      adapters: AdaptersConfigSchema.prefault({}),
      /**
       * A rogue client must not fill the store with devices: new device ids per MQTT identity (a user, or the anonymous
       * clients of one host) per minute, and devices in the store at most. Beyond either, a message is acknowledged
       * and not stored (counted, logged rate-limited). Devices the store holds are never refused.
       */
      deviceLimits: z
        .strictObject({
          newPerMinute: z.number().int().min(1).max(1_000_000).default(100),
          total: z.number().int().min(1).max(10_000_000).default(5000),
        })
        .prefault({}),
      critical: z
        .strictObject({
          deviceTypes: z.array(z.string().min(1)).default(['lock', 'alarm', 'smoke', 'leak', 'water_leak']),
          attributes: z.array(z.string().min(1)).default(['lock_state', 'alarm', 'smoke', 'water_leak', 'leak', 'tamper']),
        })
        .prefault({}),
    })
    .prefault({}),
  server: z
    .strictObject({
      url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }).default('http://127.0.0.1:8000'),
      clientId: z.string().min(1).max(256).optional(),
      clientSecret: z.string().min(1).max(512).optional(),
      /**
       * What the server is (docs/protocol.md §Compatibility): `inbetweenies` (this project's server), `funkygibbon-v1`
       * (the original Python FunkyGibbon v1: no health or token endpoint, no signatures, no gzip, no entity states), or
       * `auto`: decided from the server's answers and remembered in the store.
       */
      profile: z.enum(['auto', 'inbetweenies', 'funkygibbon-v1']).default('auto'),
      /** A static bearer token for a server without a token endpoint (FunkyGibbon v1); sent as is, never refreshed. */
      token: z.string().min(1).max(4096).optional(),
      /** The FunkyGibbon v1 house pushed rooms and devices belong to (default: the house its pulled rooms name). */
      houseId: z.string().min(1).max(256).optional(),
      /**
       * Speak only the protocol's seed: whole states, no `caps`, no digest (docs/protocol.md §Capabilities), for a
       * server that mishandles the extensions.
       */
      seedOnly: z.boolean().default(false),
      /** Sign requests and verify response signatures (docs/protocol.md §HMAC). */
      hmac: z.boolean().default(true),
      gzipThresholdBytes: z.number().int().min(0).default(1024),
      connectTimeoutMs: z.number().int().min(100).default(5000),
      requestTimeoutMs: z.number().int().min(100).default(15000),
      /** https: PEM file of a private CA that issued the server certificate (instead of the system CAs). */
      caFile: z.string().min(1).optional(),
      /** https: accepted SHA-256 pins of the server key (SPKI), base64 or hex; a string or a list (key rotation). */
      pinSha256: z
        .union([PinSha256, z.array(PinSha256).min(1).max(16)])
        .transform((v) => (typeof v === 'string' ? [v] : v))
        .optional(),
      /** A server_time further than this from the HTTP Date header (plus the round trip) is not taken as the clock. */
      clockMaxDisagreementMs: z.number().int().min(0).max(3_600_000).default(5000),
    })
    .prefault({}),
  sync: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Hold a live wait while online so server changes arrive at once (docs/protocol.md §Live waits); false: poll only. */
      live: z.boolean().default(true),
      /** The wait asked for (the server caps it at its own maximum, 25 s by default). */
      liveWaitSeconds: z.number().min(0.1).max(3600).default(25),
      /** A held wait's HTTP timeout is its wait plus this: a dead connection is noticed within wait + margin. */
      liveTimeoutMarginSeconds: z.number().min(0.1).max(600).default(5),
      /** Polling, against a server without live waits (seed §Polling: adaptive between 5 s and 5 min). */
      minIntervalSeconds: z.number().min(0.05).default(5),
      maxIntervalSeconds: z.number().min(1).default(300),
      /** A critical local change (ingest.critical) is pushed this long after it arrived. */
      criticalDebounceMs: z.number().int().min(0).max(60_000).default(20),
      /** An ordinary local change is pushed within this window; the changes of the window share one push. */
      uplinkWindowMs: z.number().int().min(0).max(600_000).default(1000),
      pushBatchSize: z.number().int().min(1).max(1000).default(1000),
      maxRetries: z.number().int().min(0).max(20).default(5),
      offlineProbeSeconds: z.number().min(0.05).default(30),
    })
    .prefault({}),
  /** The daemon's HTTP listener: status page, health, metrics, control (docs/operations.md, docs/security.md). */
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      /** Status page, health, metrics and control; null disables the listener. */
      port: Port.nullable().default(9180),
      /** Required on every request when set; required to bind anywhere but loopback (env INBETWEENIES_HTTP_TOKEN). */
      token: z.string().min(16, 'expected at least 16 characters (e.g. openssl rand -hex 24)').max(512).optional(),
      /** Host names (and addresses) the listener answers to besides loopback and the address it was reached at. */
      allowedHosts: z.array(HostName).max(64).default([]),
      /** Status pages (live update streams) open at once. */
      maxEventClients: z.number().int().min(1).max(256).default(16),
    })
    .prefault({}),
  /** The gateway itself on MQTT: its retained online/offline state and Home Assistant discovery of its own entities. */
  bridge: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** `<baseTopic>/bridge/state` (online/offline, retained) and `<baseTopic>/bridge/info` (values, retained). */
      baseTopic: TopicLevel.default('inbetweenies'),
      homeassistant: z
        .strictObject({
          enabled: z.boolean().default(true),
          discoveryPrefix: TopicLevel.default('homeassistant'),
          /** Values are published when they change, at most this often. */
          updateSeconds: z.number().min(1).max(3600).default(5),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Health checks behind /healthz and the systemd watchdog (docs/operations.md §systemd). */
  health: z
    .strictObject({
      /** How often health is evaluated (and WATCHDOG=1 sent while healthy; at least twice per WatchdogSec). */
      intervalMs: z.number().int().min(100).max(60_000).default(5000),
      maxEventLoopLagMs: z.number().int().min(50).default(1000),
      /** At most this often an idle store gets a write probe (a group commit since the last check counts as one). */
      storeProbeSeconds: z.number().min(1).default(60),
      /** /healthz turns 503 once sync has been failing (backoff/offline) this long. */
      syncFailingAfterSeconds: z.number().min(1).default(900),
    })
    .prefault({}),
  /** Scheduled jobs (cron expressions, local time unless timezone is set); a job never overlaps itself. */
  jobs: z
    .strictObject({
      timezone: TimeZone.optional(),
      reconcile: z.strictObject({ enabled: z.boolean().default(true), schedule: Cron.default('30 3 * * 0') }).prefault({}),
      maintenance: z.strictObject({ enabled: z.boolean().default(true), schedule: Cron.default('15 4 * * *') }).prefault({}),
      pruneConflicts: z
        .strictObject({
          enabled: z.boolean().default(true),
          schedule: Cron.default('45 4 * * *'),
          keepDays: z.number().int().min(1).max(3650).default(90),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;

/** Environment variables that override the file (documented in the README). */
export const ENV_OVERRIDES: ReadonlyArray<{ name: string; path: readonly string[]; type: 'string' | 'number' }> = [
  { name: 'INBETWEENIES_DATA_DIR', path: ['dataDir'], type: 'string' },
  { name: 'INBETWEENIES_SERVER_URL', path: ['server', 'url'], type: 'string' },
  { name: 'INBETWEENIES_CLIENT_ID', path: ['server', 'clientId'], type: 'string' },
  { name: 'INBETWEENIES_CLIENT_SECRET', path: ['server', 'clientSecret'], type: 'string' },
  { name: 'INBETWEENIES_SERVER_TOKEN', path: ['server', 'token'], type: 'string' },
  { name: 'INBETWEENIES_MQTT_HOST', path: ['mqtt', 'host'], type: 'string' },
  { name: 'INBETWEENIES_MQTT_PORT', path: ['mqtt', 'port'], type: 'number' },
  { name: 'INBETWEENIES_MQTT_PASSWORD', path: ['mqtt', 'external', 'password'], type: 'string' },
  { name: 'INBETWEENIES_HTTP_PORT', path: ['http', 'port'], type: 'number' },
  { name: 'INBETWEENIES_HTTP_TOKEN', path: ['http', 'token'], type: 'string' },
  { name: 'INBETWEENIES_LOG_LEVEL', path: ['log', 'level'], type: 'string' },
];

/** Command-line overrides of `run` (docs/operations.md §Command line). */
export interface GatewayFlags {
  readonly dataDir?: string;
  readonly mqttHost?: string;
  readonly mqttPort?: number;
  readonly serverUrl?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly httpPort?: number;
}

type Tree = Record<string, unknown>;

function setPath(tree: Tree, path: readonly string[], value: unknown): void {
  let node = tree;
  path.slice(0, -1).forEach((key) => {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Tree;
  });
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

/** Reads and parses a YAML file; a file that cannot be read, is not YAML or not a mapping is a config problem. */
export function readYamlSource(file: string): YamlSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayConfigError([{ path: '(file)', message: `cannot read ${file}: ${(err as Error).message}` }], file);
  }
  const source = parseYamlSource(text, file);
  const doc = source.tree;
  if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc))) {
    throw new GatewayConfigError([{ path: '(root)', message: 'expected a mapping of settings', line: 1, column: 1 }], file);
  }
  return source;
}

/** Reads and parses a YAML file into a plain tree. */
export function readYamlFile(file: string): Tree {
  const tree = readYamlSource(file).tree;
  return tree === null || tree === undefined ? {} : { ...(tree as Tree) };
}

export interface LoadGatewayConfigOptions {
  readonly file?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly flags?: GatewayFlags;
}

const FLAG_NAMES: ReadonlyArray<[keyof GatewayFlags, readonly string[], string]> = [
  ['dataDir', ['dataDir'], '--data-dir'],
  ['mqttHost', ['mqtt', 'host'], '--mqtt-host'],
  ['mqttPort', ['mqtt', 'port'], '--mqtt-port'],
  ['serverUrl', ['server', 'url'], '--server-url'],
  ['clientId', ['server', 'clientId'], '--client-id'],
  ['clientSecret', ['server', 'clientSecret'], '--client-secret'],
  ['httpPort', ['http', 'port'], '--http-port'],
];

/**
 * Builds the effective configuration; throws a ConfigError (a GatewayConfigError, with the problems also kept
 * structured) listing every problem with its path, its line in the file and what is allowed.
 */
export function loadGatewayConfig(options: LoadGatewayConfigOptions = {}): GatewayConfig {
  const source = options.file ? readYamlSource(options.file) : undefined;
  const tree: Tree = source?.tree ? { ...(source.tree as Tree) } : {};
  const problems: ConfigProblem[] = [];
  /** Settings that did not come from the file: their problems name the variable or flag instead of a line. */
  const overrides = new Map<string, string>();
  for (const override of ENV_OVERRIDES) {
    const raw = options.env?.[override.name];
    if (raw === undefined || raw === '') continue;
    overrides.set(override.path.join('.'), override.name);
    if (override.type === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n)) problems.push({ path: override.name, message: `expected a number, got ${JSON.stringify(raw)}` });
      else setPath(tree, override.path, n);
    } else {
      setPath(tree, override.path, raw);
    }
  }
  const f = options.flags ?? {};
  for (const [key, path, flag] of FLAG_NAMES) {
    const value = f[key];
    if (value === undefined) continue;
    overrides.set(path.join('.'), flag);
    setPath(tree, path, value);
  }
  const where = options.file ?? 'defaults';
  const parsed = GatewayConfigSchema.safeParse(tree, { reportInput: true });
  if (!parsed.success) problems.push(...explainIssues(parsed.error.issues, { schema: GatewayConfigSchema, ...(source ? { source } : {}), overrides }));
  if (problems.length > 0 || !parsed.success) throw new GatewayConfigError(problems, where);
  const config = parsed.data;
  const token = httpTokenProblem(config, source, overrides);
  if (token) throw new GatewayConfigError([token], where);
  if (config.sync.minIntervalSeconds > config.sync.maxIntervalSeconds) {
    const pos = source?.locate(['sync', 'minIntervalSeconds']);
    throw new GatewayConfigError(
      [
        {
          path: 'sync.minIntervalSeconds',
          message: `expected at most sync.maxIntervalSeconds (${config.sync.maxIntervalSeconds}), got ${config.sync.minIntervalSeconds}`,
          ...(pos ? { line: pos.line, column: pos.column } : {}),
        },
      ],
      where,
    );
  }
  return config;
}

/** Whether a listen address is this machine only: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A listener reachable from the network must have a token (docs/security.md §The HTTP listener). */
function httpTokenProblem(config: GatewayConfig, source: YamlSource | undefined, overrides: ReadonlyMap<string, string>): ConfigProblem | undefined {
  const { host, port, token } = config.http;
  if (port === null || token !== undefined || isLoopbackHost(host)) return undefined;
  const pos = overrides.has('http.host') ? undefined : source?.locate(['http', 'host']);
  return {
    path: 'http.token',
    message: `required when http.host is not a loopback address (got ${JSON.stringify(host)}): set http.token or INBETWEENIES_HTTP_TOKEN (e.g. openssl rand -hex 24), or keep http.host: 127.0.0.1`,
    ...(pos ? { line: pos.line, column: pos.column } : {}),
  };
}

/** The configuration with secrets replaced, for logs and `check-config` output. */
export function redactConfig(config: GatewayConfig): GatewayConfig {
  return {
    ...config,
    mqtt: redactMqttConfig(config.mqtt),
    server: {
      ...config.server,
      clientSecret: config.server.clientSecret ? '[redacted]' : undefined,
      token: config.server.token ? '[redacted]' : undefined,
    },
    http: { ...config.http, token: config.http.token ? '[redacted]' : undefined },
  };
}

/**
 * The `mqtt` section of the gateway config: the embedded broker's listeners, users, ACLs and
 * limits, or — with `mode: external` — the existing broker (e.g. the Mosquitto zigbee2mqtt already uses) the gateway
 * connects to instead. Documented in docs/security.md and config/gateway.example.yaml.
 */
import { z } from 'zod';
import { topicFilterProblem } from './acl.js';
import { clientIdPatternProblem } from './client-ids.js';
import { BrokerLimitsSchema } from './limits.js';
import { passwordHashProblem } from './password.js';

const Port = z.number().int().min(0).max(65535);

const TopicFilter = z.string().superRefine((value, ctx) => {
  const problem = topicFilterProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const ClientIdPattern = z.string().superRefine((value, ctx) => {
  const problem = clientIdPatternProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const UserSchema = z.strictObject({
  username: z.string().min(1).max(256),
  passwordHash: z.string().superRefine((value, ctx) => {
    const problem = passwordHashProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  /** Client id patterns (`*` any run, `%u` the username) this user must connect with, and no one else may use. */
  clientIds: z.array(ClientIdPattern).min(1).optional(),
});

const AclRuleSchema = z.strictObject({
  /** Usernames; omitted: every authenticated user. */
  users: z.array(z.string().min(1)).min(1).optional(),
  /** Also (or, without `users`, only) anonymous clients. */
  anonymous: z.boolean().optional(),
  publish: z.array(TopicFilter).default([]),
  subscribe: z.array(TopicFilter).default([]),
  /** Refused for the same clients, checked before every allow of every rule. */
  deny: z
    .strictObject({
      publish: z.array(TopicFilter).default([]),
      subscribe: z.array(TopicFilter).default([]),
    })
    .optional(),
});

const TlsSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0'),
  port: Port.default(8883),
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  caFile: z.string().min(1).optional(),
  /** Clients must present a certificate signed by caFile. */
  requireClientCert: z.boolean().default(false),
});

const WebSocketSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0'),
  port: Port.default(9001),
  path: z.string().startsWith('/').default('/mqtt'),
});

export const ExternalBrokerSchema = z.strictObject({
  /** mqtt://host:1883 or mqtts://host:8883 (ws:// and wss:// work too). */
  url: z.url({ protocol: /^(mqtts?|wss?)$/ }),
  username: z.string().min(1).optional(),
  /** Better: INBETWEENIES_MQTT_PASSWORD in the environment. */
  password: z.string().min(1).optional(),
  /** Fixed, so the broker keeps the gateway's session (QoS 1 messages queued while it is down). */
  clientId: z.string().min(1).max(256).default('inbetweenies-gateway'),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
  /** MQTT 5 only: how long the broker keeps the session after a disconnect. */
  sessionExpirySeconds: z.number().int().min(0).max(4_294_967_295).default(7 * 24 * 3600),
  keepaliveSeconds: z.number().int().min(5).max(65_535).default(30),
  connectTimeoutMs: z.number().int().min(100).default(10_000),
  /** CA bundle for mqtts://; by default the system's. */
  caFile: z.string().min(1).optional(),
  rejectUnauthorized: z.boolean().default(true),
  /** Reconnect backoff: doubling from min to max, ±20 % jitter. */
  reconnectMinMs: z.number().int().min(10).default(1000),
  reconnectMaxMs: z.number().int().min(10).default(30_000),
});

export const MqttConfigSchema = z
  .strictObject({
    /** embedded: the gateway is the broker (aedes). external: it connects to an existing broker. */
    mode: z.enum(['embedded', 'external']).default('embedded'),
    /** Embedded plain-TCP listener; 0.0.0.0 so devices on the home network can connect. */
    host: z.string().min(1).default('0.0.0.0'),
    port: Port.default(1883),
    /** Larger PUBLISH payloads are dropped by the embedded broker and refused by every adapter. */
    maxPayloadBytes: z.number().int().min(256).max(16 * 1024 * 1024).default(256 * 1024),
    /** Clients without a username: false never, 'loopback' only from 127.0.0.1/::1, true from anywhere. */
    allowAnonymous: z.union([z.boolean(), z.literal('loopback')]).default('loopback'),
    users: z.array(UserSchema).default([]),
    /** Client id patterns for every user without its own `clientIds`; omitted: any client id. */
    userClientIds: z.array(ClientIdPattern).min(1).optional(),
    /** Topic ACL; omitted: no restrictions. Once present, whatever no rule allows is denied. */
    acl: z.array(AclRuleSchema).optional(),
    tls: TlsSchema.optional(),
    websocket: WebSocketSchema.optional(),
    limits: BrokerLimitsSchema.omit({ maxPayloadBytes: true }).prefault({}),
    external: ExternalBrokerSchema.optional(),
  })
  .superRefine((mqtt, ctx) => {
    const seen = new Set<string>();
    mqtt.users.forEach((user, i) => {
      if (seen.has(user.username)) ctx.addIssue({ code: 'custom', path: ['users', i, 'username'], message: `${JSON.stringify(user.username)} is listed twice` });
      seen.add(user.username);
    });
    if (mqtt.mode === 'external' && !mqtt.external) {
      ctx.addIssue({ code: 'custom', path: ['external'], message: 'expected the external broker (url, …) when mode is external' });
    }
    if (mqtt.external && mqtt.external.reconnectMinMs > mqtt.external.reconnectMaxMs) {
      ctx.addIssue({ code: 'custom', path: ['external', 'reconnectMinMs'], message: `expected at most reconnectMaxMs (${mqtt.external.reconnectMaxMs})` });
    }
  });

export type MqttConfig = z.infer<typeof MqttConfigSchema>;
export type ExternalBrokerConfig = z.infer<typeof ExternalBrokerSchema>;

/** The section with secrets replaced, for logs and check-config. */
export function redactMqttConfig(mqtt: MqttConfig): MqttConfig {
  if (!mqtt.external?.password) return mqtt;
  return { ...mqtt, external: { ...mqtt.external, password: '[redacted]' } };
}

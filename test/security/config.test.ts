/** The `mqtt` config section (src/broker/config.ts) through loadGatewayConfig: every problem named with its path. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig, redactConfig } from '../../src/config/gateway-config.js';
import { ConfigError } from '../../src/errors.js';
import { FAST_SCRYPT } from './harness.js';
import { hashPassword } from '../../src/broker/password.js';
import { MqttConfigSchema } from '../../src/broker/config.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mqtt-config-'));
  dirs.push(dir);
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return loadGatewayConfig({ file, env });
}

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('mqtt config section', () => {
  it('defaults: embedded, anonymous from loopback only, no ACL, no TLS or WebSocket', () => {
    const { mqtt } = load('');
    expect(mqtt).toMatchObject({ mode: 'embedded', allowAnonymous: 'loopback', users: [], port: 1883 });
    expect(mqtt.acl).toBeUndefined();
    expect(mqtt.tls).toBeUndefined();
    expect(mqtt.limits.connectionBurst).toBe(20);
  });

  it('accepts users, ACLs, TLS, WebSocket and limits', async () => {
    const hash = await hashPassword('pw', FAST_SCRYPT);
    const { mqtt } = load(`mqtt:
  allowAnonymous: false
  users:
    - { username: z2m, passwordHash: "${hash}" }
  acl:
    - users: [z2m]
      publish: ["zigbee2mqtt/#"]
      subscribe: ["zigbee2mqtt/+/set"]
    - publish: ["devices/%u/#"]
  tls: { certFile: /etc/ssl/gw.pem, keyFile: /etc/ssl/gw.key }
  websocket: { port: 9001 }
  limits: { maxConnections: 50, connectionsPerMinute: 30 }
`);
    expect(mqtt.users[0]?.username).toBe('z2m');
    expect(mqtt.acl?.[1]).toEqual({ publish: ['devices/%u/#'], subscribe: [] });
    expect(mqtt.tls).toMatchObject({ port: 8883, host: '0.0.0.0', requireClientCert: false });
    expect(mqtt.websocket).toEqual({ host: '0.0.0.0', port: 9001, path: '/mqtt' });
    expect(mqtt.limits.maxConnections).toBe(50);
  });

  it('lists every problem with its path', () => {
    const found = problems(() =>
      load(`mqtt:
  allowAnonymous: sometimes
  users:
    - { username: a, passwordHash: plaintext }
    - { username: a, passwordHash: "scrypt$3$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }
  acl:
    - publish: ["a/#/b"]
  mode: external
  limits: { maxInflightPerClient: 0 }
`),
    );
    const text = found.join('\n');
    expect(text).toMatch(/mqtt\.allowAnonymous/);
    expect(text).toMatch(/mqtt\.users\.0\.passwordHash: expected scrypt\$<N>/);
    expect(text).toMatch(/mqtt\.users\.1\.passwordHash: N: expected a power of two/);
    expect(text).toMatch(/mqtt\.acl\.0\.publish\.0: '#' must be a whole level/);
    expect(text).toMatch(/mqtt\.limits\.maxInflightPerClient/);
  });

  it('external mode needs a broker URL; the password may come from the environment and is redacted', () => {
    expect(problems(() => load('mqtt: { mode: external }')).join('\n')).toMatch(/mqtt\.external: expected the external broker/);
    expect(problems(() => load('mqtt: { mode: external, external: { url: "http://x" } }')).join('\n')).toMatch(/mqtt\.external\.url/);
    const config = load('mqtt: { mode: external, external: { url: "mqtt://127.0.0.1:1883", username: gw } }', { INBETWEENIES_MQTT_PASSWORD: 's3cret' });
    expect(config.mqtt.external).toMatchObject({ username: 'gw', password: 's3cret', clientId: 'inbetweenies-gateway', protocolVersion: 4 });
    expect(redactConfig(config).mqtt.external?.password).toBe('[redacted]');
  });

  it('accepts deny rules, client id patterns and the new limits; names every bad one', async () => {
    const hash = await hashPassword('pw', FAST_SCRYPT);
    const { mqtt } = load(`mqtt:
  users:
    - { username: alice, passwordHash: "${hash}", clientIds: ["%u-*"] }
  userClientIds: ["%u"]
  acl:
    - publish: ["#"]
      subscribe: ["#"]
      deny: { subscribe: ["test/nosubscribe"] }
  limits: { maxConnectionsPerIdentity: 10, maxRetainedBytesPerIdentity: 1048576, authFailureBurst: 3 }
`);
    expect(mqtt.users[0]?.clientIds).toEqual(['%u-*']);
    expect(mqtt.userClientIds).toEqual(['%u']);
    expect(mqtt.acl?.[0]?.deny).toEqual({ publish: [], subscribe: ['test/nosubscribe'] });
    expect(mqtt.limits).toMatchObject({ maxConnectionsPerIdentity: 10, maxRetainedBytesPerIdentity: 1048576, authFailureBurst: 3, maxConnectionsPerAddress: 500 });
    const found = problems(() =>
      load(`mqtt:
  users:
    - { username: a, passwordHash: "${hash}", clientIds: ["*"] }
  acl:
    - deny: { subscribe: ["a/#/b"], other: [] }
  limits: { maxConnectionsPerIdentity: 0, maxRetainedBytes: 10 }
`),
    ).join('\n');
    expect(found).toMatch(/mqtt\.users\.0\.clientIds\.0: a pattern of only \* matches every client id/);
    expect(found).toMatch(/mqtt\.acl\.0\.deny\.subscribe\.0: '#' must be a whole level/);
    expect(found).toMatch(/mqtt\.acl\.0\.deny/);
    expect(found).toMatch(/mqtt\.limits\.maxConnectionsPerIdentity/);
    expect(found).toMatch(/mqtt\.limits\.maxRetainedBytes/);
  });

  it('config/gateway.example.yaml documents the broker limits with their real defaults', () => {
    const example = loadGatewayConfig({ file: 'config/gateway.example.yaml', env: {} });
    const defaults = MqttConfigSchema.parse({});
    expect(example.mqtt.limits).toEqual(defaults.limits);
  });
});

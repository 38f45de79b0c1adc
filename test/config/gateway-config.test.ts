import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig, redactConfig } from '../../src/config/gateway-config.js';
import { ConfigError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'ibg-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('gateway config', () => {
  it('runs on embedded defaults', () => {
    const c = loadGatewayConfig();
    expect(c.mqtt.port).toBe(1883);
    expect(c.dataDir).toBe('./data');
    expect(c.server.url).toBe('http://127.0.0.1:8000');
    expect(c.sync.minIntervalSeconds).toBe(5);
    expect(c.sync.maxIntervalSeconds).toBe(300);
  });

  it('loads the shipped example file', () => {
    const c = loadGatewayConfig({ file: 'config/gateway.example.yaml' });
    expect(c.mqtt.port).toBe(1883);
  });

  it('lists every problem at once with its path', () => {
    const p = file('bad.yaml', 'mqtt:\n  port: 70000\nserver:\n  url: ftp://x\nsync:\n  maxRetries: -1\nbogus: 1\n');
    let err: unknown;
    try {
      loadGatewayConfig({ file: p });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/mqtt\.port/);
    expect(problems).toMatch(/server\.url/);
    expect(problems).toMatch(/sync\.maxRetries/);
    expect(problems).toMatch(/bogus/);
    expect((err as ConfigError).problems.length).toBeGreaterThanOrEqual(4);
  });

  it('reports YAML syntax errors and non-mapping files', () => {
    expect(() => loadGatewayConfig({ file: file('syntax.yaml', 'mqtt: [1,\n') })).toThrow(/YAML syntax/);
    expect(() => loadGatewayConfig({ file: file('list.yaml', '- 1\n- 2\n') })).toThrow(/mapping/);
    expect(() => loadGatewayConfig({ file: join(dir, 'missing.yaml') })).toThrow(/cannot read/);
  });

  it('applies environment then flags over the file', () => {
    const p = file('ok.yaml', 'server:\n  clientId: from-file\nmqtt:\n  port: 1884\n');
    const c = loadGatewayConfig({
      file: p,
      env: { INBETWEENIES_CLIENT_SECRET: 'env-secret', INBETWEENIES_CLIENT_ID: 'from-env', INBETWEENIES_MQTT_PORT: '1885' },
      flags: { mqttPort: 1886 },
    });
    expect(c.server.clientId).toBe('from-env');
    expect(c.server.clientSecret).toBe('env-secret');
    expect(c.mqtt.port).toBe(1886);
    expect(redactConfig(c).server.clientSecret).toBe('[redacted]');
    expect(() => loadGatewayConfig({ env: { INBETWEENIES_MQTT_PORT: 'abc' } })).toThrow(/INBETWEENIES_MQTT_PORT/);
  });
});

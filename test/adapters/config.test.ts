import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/gateway-config.js';
import { ConfigError } from '../../src/errors.js';
import { createAdapters } from '../../src/ingest/adapters/index.js';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function withYaml<T>(yaml: string, fn: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'ib-adapters-cfg-'));
  try {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, yaml);
    return fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const names = (config: ReturnType<typeof loadGatewayConfig>) =>
  createAdapters({ adapters: config.ingest.adapters, native: config.ingest.native, maxPayloadBytes: config.mqtt.maxPayloadBytes }).map((a) => a.name);

describe('ingest.adapters config', () => {
  it('turns every ecosystem on by default, native last (generic only once it has mappings)', () => {
    expect(names(loadGatewayConfig())).toEqual(['zigbee2mqtt', 'tasmota', 'shelly', 'homeassistant', 'native']);
  });

  it('turns adapters off and tunes them', () => {
    const yaml = `ingest:
  adapters:
    zigbee2mqtt: { enabled: false }
    shelly: { enabled: false }
    tasmota: { prefixes: { tele: telemetry } }
    generic:
      mappings:
        - { pattern: "home/{device}/{attribute}", commandTopic: "home/{device}/{attribute}/set" }
`;
    const config = withYaml(yaml, (file) => loadGatewayConfig({ file }));
    expect(names(config)).toEqual(['tasmota', 'homeassistant', 'generic', 'native']);
    const tasmota = createAdapters({ adapters: config.ingest.adapters, native: config.ingest.native, maxPayloadBytes: 4096 })[0];
    expect(tasmota?.filters).toContain('telemetry/+/+');
  });

  it('the shipped example config loads with the same adapters as the defaults', () => {
    expect(names(loadGatewayConfig({ file: 'config/gateway.example.yaml' }))).toEqual(names(loadGatewayConfig()));
  });

  it('lists bad adapter settings with their paths', () => {
    const yaml = `ingest:
  adapters:
    zigbee2mqtt: { baseTopic: "a/b" }
    shelly: { prefixFilters: ["#"] }
    bogus: {}
`;
    try {
      withYaml(yaml, (file) => loadGatewayConfig({ file }));
      expect.unreachable('config accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = String((err as ConfigError).message) + JSON.stringify(err);
      expect(text).toMatch(/ingest\.adapters\.zigbee2mqtt\.baseTopic/);
      expect(text).toMatch(/ingest\.adapters\.shelly\.prefixFilters/);
      expect(text).toMatch(/bogus/);
    }
  });
});

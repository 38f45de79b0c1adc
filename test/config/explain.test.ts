/**
 * Config problems a person can act on: allowed values spelled out, the nearest known key for a typo, the line and
 * column in the file, the environment variable when a value came from there, secrets never echoed; and
 * `check-config --json` printing one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { editDistance, GatewayConfigError, keysAt, nearestKey, type ConfigProblem } from '../../src/config/explain.js';
import { GatewayConfigSchema, loadGatewayConfig } from '../../src/config/gateway-config.js';
import { ConfigError } from '../../src/errors.js';
import { CLI, assertBuilt } from '../helpers/daemon-process.js';

const dir = mkdtempSync(join(tmpdir(), 'ib-explain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const BAD = [
  'log:', //                                   1
  '  level: verbose', //                       2
  'mqtt:', //                                  3
  '  allowAnonymous: yes please', //           4
  '  prot: 1884', //                           5
  'server:', //                                6
  '  clientSecret: 12345', //                  7
  'http:', //                                  8
  '  port: 99999', //                          9
  'ingest:', //                               10
  '  adapters:', //                           11
  '    zigbe2mqtt: {}', //                    12
  '',
].join('\n');

function problemsOf(load: () => unknown): readonly ConfigProblem[] {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(GatewayConfigError);
    return (err as GatewayConfigError).details;
  }
  throw new Error('expected a ConfigError');
}

describe('nearest key', () => {
  it('counts a transposition as one edit, and suggests only close keys', () => {
    expect(editDistance('prot', 'port')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(nearestKey('prot', ['mode', 'host', 'port', 'users'])).toBe('port');
    expect(nearestKey('Port', ['port'])).toBe('port');
    expect(nearestKey('allowAnonymus', keysAt(GatewayConfigSchema, ['mqtt']))).toBe('allowAnonymous');
    expect(nearestKey('banana', ['mode', 'host', 'port'])).toBeUndefined();
  });

  it('knows the keys under defaults, optionals and nested sections', () => {
    expect(keysAt(GatewayConfigSchema, ['mqtt'])).toContain('allowAnonymous');
    expect(keysAt(GatewayConfigSchema, ['ingest', 'adapters'])).toEqual(expect.arrayContaining(['zigbee2mqtt', 'shelly', 'tasmota']));
    expect(keysAt(GatewayConfigSchema, ['mqtt', 'users', 0])).toEqual(['username', 'passwordHash', 'clientIds']);
  });
});

describe('config problems', () => {
  it('say what is allowed, suggest the nearest key, and give line and column', () => {
    const problems = problemsOf(() => loadGatewayConfig({ file: file('bad.yaml', BAD) }));
    const by = (path: string) => problems.find((p) => p.path === path);
    expect(by('log.level')).toEqual({ path: 'log.level', line: 2, column: 10, message: expect.stringMatching(/^expected one of "fatal", .*"trace" or "silent", got "verbose"$/) });
    expect(by('mqtt.allowAnonymous')).toMatchObject({ line: 4, column: 19, message: 'expected true, false or "loopback", got "yes please"' });
    expect(by('mqtt.prot')).toMatchObject({ line: 5, column: 3, message: 'unknown key; did you mean "port"?' });
    expect(by('http.port')).toMatchObject({ line: 9, message: 'expected a number at most 65535, got 99999' });
    expect(by('ingest.adapters.zigbe2mqtt')).toMatchObject({ line: 12, message: 'unknown key; did you mean "zigbee2mqtt"?' });
    // In file order; a secret's value is never repeated back.
    expect(problems.map((p) => p.line)).toEqual([...problems.map((p) => p.line)].sort((a, b) => (a ?? 0) - (b ?? 0)));
    expect(by('server.clientSecret')?.message).toBe('expected a string, got [redacted]');
    expect(JSON.stringify(problems)).not.toContain('12345');
  });

  it('keeps the ConfigError shape: one string per problem, `path: message` first, the position after', () => {
    try {
      loadGatewayConfig({ file: file('bad2.yaml', BAD) });
    } catch (err) {
      expect((err as ConfigError).problems).toContain('mqtt.prot: unknown key; did you mean "port"? (line 5, column 3)');
      expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    }
  });

  it('names the environment variable, not a line, when the value came from there', () => {
    const problems = problemsOf(() => loadGatewayConfig({ file: file('port.yaml', 'mqtt:\n  port: 1883\n'), env: { INBETWEENIES_MQTT_PORT: '70000' } }));
    expect(problems).toEqual([{ path: 'mqtt.port', message: 'expected a number at most 65535, got 70000 (from INBETWEENIES_MQTT_PORT)' }]);
  });

  it('YAML syntax errors carry their line', () => {
    const problems = problemsOf(() => loadGatewayConfig({ file: file('syntax.yaml', 'log:\n  level: info\nmqtt: [1,\n') }));
    expect(problems[0]).toMatchObject({ path: '(file)', line: expect.any(Number), message: expect.stringMatching(/^YAML syntax: /) });
  });
});

describe('check-config --json', () => {
  const check = (...args: string[]) => spawnSync(process.execPath, [CLI, 'check-config', ...args], { encoding: 'utf8', timeout: 30_000 });

  it('prints one JSON object with the problems and exits 1', () => {
    assertBuilt();
    const r = check(file('bad3.yaml', BAD), '--json');
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as { valid: boolean; problems: ConfigProblem[] };
    expect(out.valid).toBe(false);
    expect(out.problems).toContainEqual({ path: 'mqtt.prot', line: 5, column: 3, message: 'unknown key; did you mean "port"?' });
    const text = check(file('bad4.yaml', BAD));
    expect(text.status).toBe(1);
    expect(text.stderr).toContain('mqtt.allowAnonymous: expected true, false or "loopback", got "yes please" (line 4, column 19)');
  });

  it('a valid file: {"valid":true} and exit 0; --print adds the redacted config', () => {
    const r = check('config/gateway.example.yaml', '--json', '--print');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { valid: boolean; problems: unknown[]; config: { mqtt: { port: number } } };
    expect(out).toMatchObject({ valid: true, problems: [], config: { mqtt: { port: 1883 } } });
  });
});

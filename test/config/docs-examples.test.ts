/**
 * The configuration examples a user copies from docs/devices.md are valid configurations (the device users and ACL,
 * the rooms), so the docs cannot drift from the schema.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/broker/password.js';
import { loadGatewayConfig } from '../../src/config/gateway-config.js';

const DOC = readFileSync(resolve(import.meta.dirname, '../../docs/devices.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'ib-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The YAML code blocks of the section headed `## <title>`. */
function yamlBlocks(title: string): string[] {
  const start = DOC.indexOf(`## ${title}\n`);
  expect(start, title).toBeGreaterThanOrEqual(0);
  const end = DOC.indexOf('\n## ', start + 1);
  const section = DOC.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

function load(name: string, yaml: string) {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return loadGatewayConfig({ file });
}

describe('docs/devices.md examples', () => {
  it('device users and ACL: valid once the hashes are pasted in', async () => {
    const hash = await hashPassword('a long password', { N: 1024, r: 8, p: 1 });
    const [users] = yamlBlocks('Device users and passwords');
    expect(users).toContain('passwordHash');
    const config = load('users.yaml', (users ?? '').replaceAll('scrypt$16384$8$1$…$…', hash));
    expect(config.mqtt.users.map((u) => u.username)).toEqual(['zigbee2mqtt', 'tasmota', 'shelly']);
    expect(config.mqtt.acl?.find((r) => r.users?.includes('shelly'))?.publish).toContain('inbetweenies/rpc');
  });

  it('rooms: valid, and the devices get them', () => {
    const [rooms] = yamlBlocks('Rooms');
    const config = load('rooms.yaml', rooms ?? '');
    expect(config.ingest.adapters.shelly.rooms['shellyplus1pm-441793d69718']).toBe('Hall');
    expect(config.ingest.adapters.zigbee2mqtt.rooms['hall/motion']).toBe('Hall');
    expect(config.ingest.adapters.tasmota.rooms.kitchen_plug).toBe('Kitchen');
  });
});

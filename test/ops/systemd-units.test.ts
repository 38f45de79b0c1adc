/**
 * systemd/*.service pass `systemd-analyze verify`, checked on copies whose ExecStart names
 * binaries that exist here (this node, this checkout's dist/cli.js); the shipped files keep /usr/bin/node and /opt/….
 * Fails, never skips, when systemd-analyze is missing (scripts/test.sh installs systemd).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const UNITS = readdirSync(join(ROOT, 'systemd')).filter((f) => f.endsWith('.service'));
const dir = mkdtempSync(join(tmpdir(), 'ib-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function localCopy(name: string, patch: (text: string) => string = (t) => t): string {
  const text = readFileSync(join(ROOT, 'systemd', name), 'utf8')
    .replace('/usr/bin/node ', `${process.execPath} `)
    .replaceAll('/opt/inbetweenies-gateway/dist/cli.js', join(ROOT, 'dist/cli.js'));
  const path = join(dir, name);
  writeFileSync(path, patch(text));
  return path;
}

/** Runs systemd-analyze verify; every line it prints about the unit file counts as a finding. */
function verify(path: string): { status: number | null; findings: string[] } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' });
  if (r.error) throw new Error(`systemd-analyze is needed (apt-get install systemd): ${r.error.message}`);
  const findings = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(path) || /unknown|failed|invalid|ignoring/i.test(l));
  return { status: r.status, findings };
}

describe('systemd units', () => {
  it('ships a gateway unit and a server unit', () => {
    expect(UNITS.sort()).toEqual(['inbetweenies-gateway.service', 'inbetweenies-server.service']);
  });

  for (const name of UNITS) {
    it(`${name} passes systemd-analyze verify with no findings`, () => {
      const r = verify(localCopy(name));
      expect(r.findings).toEqual([]);
      expect(r.status).toBe(0);
    });

    it(`${name}: Type=notify, watchdog, restart, dedicated user, directories, hardening; shipped paths`, () => {
      const text = readFileSync(join(ROOT, 'systemd', name), 'utf8');
      for (const line of [
        'Type=notify', 'NotifyAccess=all', 'WatchdogSec=30', 'Restart=on-failure', 'User=inbetweenies', 'Group=inbetweenies',
        'ProtectSystem=strict', 'NoNewPrivileges=true', 'PrivateTmp=true', 'ProtectHome=true', 'CapabilityBoundingSet=',
      ]) {
        expect(text).toMatch(new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
      }
      expect(text).toMatch(/^StateDirectory=inbetweenies-(gateway|server)$/m);
      expect(text).toMatch(/^ConfigurationDirectory=inbetweenies-(gateway|server)$/m);
      expect(text).toMatch(/^ExecStart=\/usr\/bin\/node (--[\w-]+(=\d+)? )+\/opt\/inbetweenies-gateway\/dist\/cli\.js (run|server) /m);
    });
  }

  it('the check finds real problems (a broken copy is reported)', () => {
    const broken = localCopy('inbetweenies-gateway.service', (t) => t.replace('WatchdogSec=30', 'WatchdogSec=soon').replace('[Install]', 'Bogus=1\n[Install]'));
    expect(verify(broken).findings.length).toBeGreaterThanOrEqual(2);
    const missing = localCopy('inbetweenies-gateway.service', (t) => t.replace(process.execPath, '/nonexistent/node'));
    const r = verify(missing);
    expect(r.status !== 0 || r.findings.length > 0).toBe(true);
  });
});

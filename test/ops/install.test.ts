/**
 * scripts/install.sh staged with DESTDIR (no systemd, no user needed), run twice; shellcheck clean; ships only what
 * runs (no native build leftovers, sources, declarations, maps or Markdown in node_modules).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../helpers/daemon-process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPT = join(ROOT, 'scripts/install.sh');
const dest = mkdtempSync(join(tmpdir(), 'ib-install-'));
afterAll(() => rmSync(dest, { recursive: true, force: true }));

function install(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('bash', [SCRIPT, ...args], { env: { ...process.env, DESTDIR: dest }, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const mode = (p: string): number => statSync(p).mode & 0o777;

/** Every file under `dir` (symbolic links not followed). */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? listFiles(p) : e.isFile() ? [p] : [];
  });
}

describe('scripts/install.sh', () => {
  it('scripts/install.sh and scripts/test.sh are shellcheck clean (shellcheck must be installed: scripts/test.sh does it)', () => {
    for (const script of [SCRIPT, join(ROOT, 'scripts/test.sh')]) {
      const r = spawnSync('shellcheck', ['--severity=style', script], { encoding: 'utf8' });
      expect(r.error, 'shellcheck is not installed').toBeUndefined();
      expect(`${r.stdout}${r.stderr}`, script).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('installs into DESTDIR, then again idempotently keeping the edited config; uninstall keeps data, --purge removes it', () => {
    assertBuilt();
    const first = install();
    expect(first.status, first.out).toBe(0);
    const app = join(dest, 'opt/inbetweenies-gateway');
    const conf = join(dest, 'etc/inbetweenies-gateway/gateway.yaml');
    expect(existsSync(join(app, 'dist/cli.js'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/better-sqlite3/package.json'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/vitest')), 'dev dependencies are not installed').toBe(false);
    expect(mode(conf)).toBe(0o640);
    expect(mode(join(dest, 'etc/inbetweenies-gateway/environment'))).toBe(0o640);
    expect(readFileSync(conf, 'utf8')).toMatch(/^dataDir: \/var\/lib\/inbetweenies-gateway$/m);
    const unit = readFileSync(join(dest, 'etc/systemd/system/inbetweenies-gateway.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toContain('/opt/inbetweenies-gateway/dist/cli.js run');
    expect(existsSync(join(dest, 'etc/systemd/system/inbetweenies-server.service'))).toBe(true);
    const link = join(dest, 'usr/local/bin/inbetweenies-gateway');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('/opt/inbetweenies-gateway/dist/cli.js');
    expect(first.out).toContain('not calling systemctl');
    // The installed app runs: check-config on the config it wrote.
    expect(execFileSync(process.execPath, [join(app, 'dist/cli.js'), 'check-config', conf], { encoding: 'utf8' })).toContain('OK');
    // Only what runs is shipped: better-sqlite3 keeps its compiled module and loses its build tree and C sources.
    const sqlite = join(app, 'node_modules/better-sqlite3');
    expect(existsSync(join(sqlite, 'build/Release/better_sqlite3.node'))).toBe(true);
    for (const leftover of ['deps', 'src', 'build/Release/obj', 'build/Release/obj.target', 'build/Release/.deps', 'build/Release/test_extension.node', 'build/Release/sqlite3.a', 'build/Makefile', 'build/config.gypi']) {
      expect(existsSync(join(sqlite, leftover)), leftover).toBe(false);
    }
    const shipped = listFiles(join(app, 'node_modules'));
    expect(shipped.filter((f) => /\.(d\.[cm]?ts|map|md)$/.test(f) && !/licen[cs]e/i.test(f))).toEqual([]);
    expect(shipped.filter((f) => f.endsWith('.node')).map((f) => f.slice(app.length + 1)).sort()).toEqual(
      ['node_modules/better-sqlite3/build/Release/better_sqlite3.node', ...(existsSync(join(ROOT, 'node_modules/sd-notify/build/Release/notify.node')) ? ['node_modules/sd-notify/build/Release/notify.node'] : [])].sort(),
    );
    const bytes = shipped.reduce((n, f) => n + statSync(f).size, 0);
    expect(bytes, `${(bytes / 2 ** 20).toFixed(1)} MB of node_modules`).toBeLessThan(30 * 2 ** 20);
    // …and still works: the installed better-sqlite3 opens a database and queries it.
    const probe = "const D = require('better-sqlite3'); process.stdout.write(new D(':memory:').prepare('select 41 + 1 as x').get().x.toString())";
    expect(execFileSync(process.execPath, ['-e', probe], { cwd: app, encoding: 'utf8' })).toBe('42');
    expect(first.out).toMatch(/runtime dependencies: \d+ MB \(build leftovers and sources removed: \d+ MB\)/);

    writeFileSync(conf, 'dataDir: /var/lib/inbetweenies-gateway\nmqtt:\n  port: 1884\n');
    const second = install();
    expect(second.status, second.out).toBe(0);
    expect(second.out).toContain('keeping existing /etc/inbetweenies-gateway/gateway.yaml');
    expect(readFileSync(conf, 'utf8')).toContain('port: 1884');
    expect(existsSync(join(dest, 'opt/inbetweenies-gateway.old'))).toBe(false);
    expect(existsSync(join(app, 'dist/cli.js'))).toBe(true);

    const state = join(dest, 'var/lib/inbetweenies-gateway');
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, 'gateway.db'), 'store');
    const un = install('--uninstall');
    expect(un.status, un.out).toBe(0);
    expect(existsSync(app)).toBe(false);
    expect(existsSync(link)).toBe(false);
    expect(existsSync(join(dest, 'etc/systemd/system/inbetweenies-gateway.service'))).toBe(false);
    expect(readFileSync(conf, 'utf8')).toContain('port: 1884');
    expect(existsSync(join(state, 'gateway.db'))).toBe(true);

    const purge = install('--uninstall', '--purge');
    expect(purge.status, purge.out).toBe(0);
    expect(existsSync(conf)).toBe(false);
    expect(existsSync(state)).toBe(false);
  });

  it('refuses bad options with a clear message', () => {
    const r = install('--purge');
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('--purge only goes with --uninstall');
    const p = install('--prefix', 'relative/dir');
    expect(p.status).not.toBe(0);
    expect(p.out).toContain('expected an absolute path');
    expect(install('--help').out).toContain('--uninstall');
  });
});

/**
 * scripts/test.sh, the README's test command: installs the Debian packages the tests need when missing (as root), or
 * prints the one apt command to run (not root); stops the services a fresh install starts; runs npm ci only when
 * node_modules is missing or stale; passes its arguments through to npm test. apt, dpkg, systemctl, id and npm are
 * stand-ins on PATH that record their calls (a test cannot install packages); bash and the script are real. Its
 * shellcheck lint is in install.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPT = join(ROOT, 'scripts/test.sh');
const work = mkdtempSync(join(tmpdir(), 'ib-test-sh-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Fake {
  readonly uid: number;
  /** Packages dpkg-query reports as not installed. */
  readonly missing: readonly string[];
  /** Whether node_modules exists, and whether it is older than package-lock.json. */
  readonly nodeModules: 'fresh' | 'stale' | 'absent';
}

/** A checkout with the real script, and stand-in commands that append "name args" lines to calls.log. */
function checkout(fake: Fake): { dir: string; run: (...args: string[]) => { status: number | null; out: string; calls: string[] } } {
  const dir = mkdtempSync(join(work, 'co-'));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(SCRIPT, join(dir, 'scripts/test.sh'));
  writeFileSync(join(dir, 'package-lock.json'), '{}');
  if (fake.nodeModules !== 'absent') {
    mkdirSync(join(dir, 'node_modules/sd-notify'), { recursive: true });
    writeFileSync(join(dir, 'node_modules/sd-notify/index.js'), 'module.exports = {};');
    const hidden = join(dir, 'node_modules/.package-lock.json');
    writeFileSync(hidden, '{}');
    const t = Date.now() / 1000;
    utimesSync(join(dir, 'package-lock.json'), t, t);
    utimesSync(hidden, t + (fake.nodeModules === 'fresh' ? 60 : -60), t + (fake.nodeModules === 'fresh' ? 60 : -60));
  }
  const bin = join(dir, 'fakebin');
  mkdirSync(bin);
  const log = join(dir, 'calls.log');
  const record = (name: string, body = '') => {
    writeFileSync(join(bin, name), `#!/bin/bash\necho "${name} $*" >> ${JSON.stringify(log)}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  const missing = fake.missing.map((p) => `"${p}"`).join(' ');
  record('dpkg-query', `for p in ${missing}; do [ "\${@: -1}" = "$p" ] && exit 1; done; printf installed`);
  record('id', `echo ${fake.uid}`);
  record('apt-get');
  record('systemctl');
  record('service');
  // npm ci leaves a loadable sd-notify behind, as the real one does with libsystemd-dev installed.
  record('npm', 'if [ "$1" = ci ]; then mkdir -p node_modules/sd-notify && echo "module.exports = {};" > node_modules/sd-notify/index.js; fi');
  return {
    dir,
    run: (...args) => {
      const r = spawnSync('bash', [join(dir, 'scripts/test.sh'), ...args], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
      });
      const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
      return { status: r.status, out: `${r.stdout}${r.stderr}`, calls: calls.filter((c) => !c.startsWith('dpkg-query') && !c.startsWith('id')) };
    },
  };
}

describe('scripts/test.sh', () => {
  it('everything there: no apt, no npm ci; npm test gets the arguments', () => {
    const co = checkout({ uid: 1000, missing: [], nodeModules: 'fresh' });
    const r = co.run('test/ops/cli.test.ts', '--reporter=json');
    expect(r.status, r.out).toBe(0);
    expect(r.calls).toEqual(['npm test -- test/ops/cli.test.ts --reporter=json']);
  });

  it('not root and a package missing: prints the one apt command and exits 1 without running anything', () => {
    const co = checkout({ uid: 1000, missing: ['strace', 'chromium'], nodeModules: 'fresh' });
    const r = co.run();
    expect(r.status).toBe(1);
    expect(r.out).toContain('sudo apt-get update && sudo apt-get install -y --no-install-recommends strace chromium');
    expect(r.calls).toEqual([]);
  });

  it('root and packages missing: installs exactly those, stops what they started, then npm ci when node_modules is absent', () => {
    const co = checkout({ uid: 0, missing: ['mosquitto', 'postgresql'], nodeModules: 'absent' });
    const r = co.run('--bail=1');
    expect(r.status, r.out).toBe(0);
    const apt = r.calls.filter((c) => c.startsWith('apt-get'));
    expect(apt).toEqual(['apt-get update -qq', 'apt-get install -y -qq --no-install-recommends mosquitto postgresql']);
    expect(r.calls.some((c) => /^(systemctl disable --now|service) mosquitto/.test(c))).toBe(true);
    expect(r.calls.some((c) => /^(systemctl disable --now|service) postgresql/.test(c))).toBe(true);
    expect(r.calls.filter((c) => c.startsWith('npm'))).toEqual(['npm ci --no-audit --no-fund', 'npm test -- --bail=1']);
  });

  it('runs npm ci when package-lock.json is newer than node_modules', () => {
    const co = checkout({ uid: 0, missing: [], nodeModules: 'stale' });
    const r = co.run();
    expect(r.status, r.out).toBe(0);
    expect(r.calls).toEqual(['npm ci --no-audit --no-fund', 'npm test --']);
  });
});

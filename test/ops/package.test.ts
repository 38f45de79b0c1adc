/**
 * The package a stranger installs: package.json names only files that exist and fields npm knows, the LICENSE it
 * names is there, the changelog has an entry for this version, and the packed tarball carries them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown> & { version: string; license: string; bin: Record<string, string> };

describe('package', () => {
  it('names no file that does not exist, and no field npm does not know', () => {
    if (pkg.main !== undefined) expect(existsSync(join(ROOT, String(pkg.main))), String(pkg.main)).toBe(true);
    for (const bin of Object.values(pkg.bin)) expect(bin.startsWith('dist/') && bin.endsWith('.js')).toBe(true);
    expect(pkg).not.toHaveProperty('allowScripts');
  });

  it('ships the MIT LICENSE it names and a changelog with this version', () => {
    expect(pkg.license).toBe('MIT');
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} inbetweenies-gateway contributors\n/);
    const changelog = readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8');
    expect(changelog).toContain('## [Unreleased]');
    expect(changelog).toMatch(new RegExp(`^## \\[${pkg.version.replaceAll('.', '\\.')}\\] - \\d{4}-\\d{2}-\\d{2}$`, 'm'));
  });

  it('the packed tarball carries the CLI, the LICENSE, the changelog and the docs', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    const files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path) ?? [];
    for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'docs/devices.md', 'config/gateway.example.yaml', 'scripts/install.sh']) expect(files, f).toContain(f);
    if (existsSync(join(ROOT, 'dist/cli.js'))) expect(files).toContain('dist/cli.js');
    expect(files.some((f) => f.startsWith('test/') || f.startsWith('src/'))).toBe(false);
  }, 60_000);
});

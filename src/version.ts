/**
 * The package's own version, read once from the package.json that ships beside dist/ (the checkout's, or the one
 * scripts/install.sh copies to /opt/inbetweenies-gateway). `--version` prints it; status, /healthz and metrics may
 * report it. Read at start, passed down: no module-level state.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const PackageJson = z.looseObject({ name: z.string(), version: z.string().min(1) });

export interface PackageInfo {
  readonly name: string;
  readonly version: string;
}

/** Reads `../package.json` relative to this module (dist/version.js → package.json); throws when it is unusable. */
export function readPackageInfo(url: URL = new URL('../package.json', import.meta.url)): PackageInfo {
  const parsed = PackageJson.safeParse(JSON.parse(readFileSync(url, 'utf8')));
  if (!parsed.success) throw new Error(`${url.pathname}: expected "name" and "version" strings`);
  return { name: parsed.data.name, version: parsed.data.version };
}

/**
 * A config file that holds a secret itself (server.clientSecret, mqtt.external.password — the environment file is the
 * better place) must not be readable by every user of the machine: the daemon refuses to start and says which chmod
 * fixes it. Group access stays allowed: the installer gives the file to root with the daemon's group (0640).
 */
import { assertPrivateFiles } from '../util/private-files.js';
import { readYamlFile } from './gateway-config.js';

const SECRET_PATHS: ReadonlyArray<readonly string[]> = [
  ['server', 'clientSecret'],
  ['mqtt', 'external', 'password'],
];

function valueAt(tree: unknown, path: readonly string[]): unknown {
  let node = tree;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = Reflect.get(node, key);
  }
  return node;
}

/** The dotted names of the secrets written in the file itself. */
export function secretsInFile(file: string): string[] {
  const tree = readYamlFile(file);
  return SECRET_PATHS.filter((path) => valueAt(tree, path) !== undefined && valueAt(tree, path) !== null).map((path) => path.join('.'));
}

/** Throws INSECURE_PERMISSIONS when `file` holds a secret and any user may read or write it. */
export function assertConfigSecretsPrivate(file: string): void {
  const secrets = secretsInFile(file);
  if (secrets.length === 0) return;
  assertPrivateFiles([file], { holds: `${secrets.join(' and ')} (better kept in the environment, e.g. INBETWEENIES_CLIENT_SECRET)`, forbidden: 0o007, fix: 'o-rwx' });
}

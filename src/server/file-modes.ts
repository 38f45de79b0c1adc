/**
 * Files that hold secrets (the server database keeps the client secrets that key the HMAC) are private to the user
 * the server runs as: created 0600 in a 0700 directory whatever the umask, and refused at start when another user
 * could read or write them, with the command that fixes it.
 */
import { chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { GatewayError } from '../errors.js';

/** Creates `dir` (and its parents) when missing; a directory this call creates is 0700 whatever the umask. */
export function ensurePrivateDir(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** Creates `path` as an empty 0600 file when missing (exclusive create, then chmod: the umask cannot widen it). */
export function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  closeSync(fd);
  chmodSync(path, 0o600);
}

/** Throws INSECURE_PERMISSIONS when any existing file of `paths` grants any permission to group or others. */
export function assertPrivateFiles(paths: readonly string[]): void {
  const open: string[] = [];
  for (const path of paths) {
    let mode: number;
    try {
      mode = statSync(path).mode & 0o777;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if ((mode & 0o077) !== 0) open.push(`${path} (mode ${mode.toString(8).padStart(4, '0')})`);
  }
  if (open.length === 0) return;
  const files = open.map((f) => f.slice(0, f.indexOf(' (mode')));
  throw new GatewayError(
    'INSECURE_PERMISSIONS',
    `refusing to start: ${open.join(', ')} can be read or written by other users, and it holds client secrets. ` +
      `Fix: chmod 600 ${files.join(' ')} (as the user the server runs as), check who could have read it, and ` +
      `consider replacing the client secrets (server add-client).`,
  );
}

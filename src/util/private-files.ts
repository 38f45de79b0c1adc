/**
 * Files that hold secrets are private to the user the process runs as: created 0600 in a 0700 directory whatever the
 * umask, and refused at start when another user could read them, with the command that fixes it. The gateway's
 * store keeps its access and refresh tokens (and SQLite gives its -wal and -shm files the database file's mode).
 */
import { chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { GatewayError } from '../errors.js';

/** Creates `dir` (and its parents) when missing; the directory this call creates is 0700 whatever the umask. */
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
    if (err instanceof Error && 'code' in err && err.code === 'EEXIST') return;
    throw err;
  }
  closeSync(fd);
  chmodSync(path, 0o600);
}

export interface PrivacyRule {
  /** What the files hold, for the message ("access and refresh tokens"). */
  readonly holds: string;
  /** Permission bits no one but the owner may have: 0o077 (group and others) or 0o007 (others only). */
  readonly forbidden: 0o077 | 0o007;
  /** The chmod mode that fixes it: '600', or 'o-rwx' for a file the owner shares with its group on purpose. */
  readonly fix: string;
  /** What to do after the chmod; default: consider whether someone could have read it. */
  readonly afterwards?: string;
}

/** Throws INSECURE_PERMISSIONS naming every existing file of `paths` with a forbidden permission bit, and the fix. */
export function assertPrivateFiles(paths: readonly string[], rule: PrivacyRule): void {
  const open: Array<{ path: string; mode: number }> = [];
  for (const path of paths) {
    let mode: number;
    try {
      mode = statSync(path).mode & 0o777;
    } catch (err) {
      if (err instanceof Error && 'code' in err && err.code === 'ENOENT') continue;
      throw err;
    }
    if ((mode & rule.forbidden) !== 0) open.push({ path, mode });
  }
  if (open.length === 0) return;
  const who = rule.forbidden === 0o007 ? 'any user' : 'other users';
  const list = open.map((f) => `${f.path} (mode ${f.mode.toString(8).padStart(4, '0')})`).join(', ');
  throw new GatewayError(
    'INSECURE_PERMISSIONS',
    `refusing to start: ${list} can be read or written by ${who}, and it holds ${rule.holds}. ` +
      `Fix: chmod ${rule.fix} ${open.map((f) => f.path).join(' ')} (as the file's owner), then ${rule.afterwards ?? 'consider whether someone could have read it'}.`,
  );
}

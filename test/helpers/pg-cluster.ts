/**
 * A private PostgreSQL cluster for tests and benchmarks: initdb into a fresh temp dir, the postmaster as a child of
 * this process listening on 127.0.0.1 at a free port (and a unix socket inside the temp dir only), password auth,
 * fsync on (durability is part of the server's contract), stopped and removed by `stop()`.
 *
 * PostgreSQL refuses to run as root, so when this process is root (CI) the cluster runs as an unprivileged user —
 * the `postgres` system user Debian's package creates, else `nobody` — through `setpriv` (which execs: the child's
 * pid is the postmaster's). A detached watchdog stops the postmaster and removes the dir if this process dies
 * without calling `stop()` (an interrupted run leaves nothing running).
 *
 * No system service is used. Missing binaries are an error (PgUnavailableError) with how to install them: a test
 * that needs PostgreSQL fails, it never skips.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export class PgUnavailableError extends Error {
  override readonly name = 'PgUnavailableError';
}

const INSTALL_HINT =
  'PostgreSQL server binaries (initdb, postgres) are needed: `apt-get install postgresql` (Debian/Ubuntu; the tests ' +
  'start a private cluster of their own and need no running service), or set INBETWEENIES_PG_BINDIR to the directory ' +
  'holding initdb and postgres';

/** The directory holding initdb and postgres: $INBETWEENIES_PG_BINDIR, `pg_config --bindir`, or the newest /usr/lib/postgresql/N/bin. */
export function findPgBinDir(): string {
  const candidates: string[] = [];
  if (process.env.INBETWEENIES_PG_BINDIR) candidates.push(process.env.INBETWEENIES_PG_BINDIR);
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // no pg_config on PATH: try the Debian layout below
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(root, v, 'bin'));
  }
  const found = candidates.find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres')));
  if (found === undefined) throw new PgUnavailableError(`${INSTALL_HINT} (looked in: ${candidates.join(', ') || 'nothing found'})`);
  return found;
}

export interface PgClusterInfo {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The cluster's temp dir (data, socket, log). */
  readonly dir: string;
  readonly pid: number;
}

/** postgres://user:password@host:port/database */
export function databaseUrl(info: Pick<PgClusterInfo, 'host' | 'port' | 'user' | 'password'>, database: string): string {
  return `postgres://${encodeURIComponent(info.user)}:${encodeURIComponent(info.password)}@${info.host}:${info.port}/${encodeURIComponent(database)}`;
}

export interface PgCluster extends PgClusterInfo {
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  url(database: string): string;
  /** Fast shutdown (SIGINT), then removes the dir. Idempotent. */
  stop(): Promise<void>;
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
  readonly name: string;
}

/** Root cannot run PostgreSQL: pick an unprivileged system user. */
function runAsUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && uid > 0) return { uid, gid, name };
    } catch {
      // no such user: next
    }
  }
  throw new PgUnavailableError('running as root and neither the `postgres` nor the `nobody` user exists to run PostgreSQL as');
}

function asUser(runAs: RunAs | undefined, command: string, args: readonly string[]): [string, string[]] {
  if (runAs === undefined) return [command, [...args]];
  return ['setpriv', [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--clear-groups', '--', command, ...args]];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitReady(info: PgClusterInfo, child: ChildProcess, logPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited at start (${child.exitCode ?? child.signalCode}): ${tail(logPath)}`);
    }
    const client = new pg.Client({ connectionString: databaseUrl(info, 'postgres'), connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      lastError = (err as Error).message;
    } finally {
      await client.end().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`postgres did not accept connections within ${timeoutMs} ms (${lastError}): ${tail(logPath)}`);
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * A detached shell that outlives this process: once `ownerPid` is gone it stops the postmaster (fast, then
 * immediate) and removes the dir. `stop()` kills it first.
 */
function startWatchdog(ownerPid: number, pgPid: number, dir: string): ChildProcess {
  const script = `
    while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done
    kill -INT ${pgPid} 2>/dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 ${pgPid} 2>/dev/null || break; sleep 0.5; done
    kill -QUIT ${pgPid} 2>/dev/null
    sleep 1
    rm -rf '${dir}'`;
  const dog = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  dog.unref();
  return dog;
}

export interface StartPgClusterOptions {
  readonly startTimeoutMs?: number;
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>;
}

export async function startPgCluster(options: StartPgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBinDir();
  const runAs = runAsUser();
  const dir = mkdtempSync(join(tmpdir(), 'ib-pg-'));
  chmodSync(dir, 0o700);
  if (runAs !== undefined) chownSync(dir, runAs.uid, runAs.gid);
  const user = 'ib';
  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs !== undefined) chownSync(pwfile, runAs.uid, runAs.gid);
  const data = join(dir, 'data');
  try {
    const [cmd, args] = asUser(runAs, join(bin, 'initdb'), [
      '-D', data, '-U', user, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C',
      // initdb's own fsync of the fresh template only: the running cluster fsyncs (fsync=on below)
      '--no-sync',
    ]);
    execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed: ${(err as Error).message} ${stderr}`);
  }
  rmSync(pwfile, { force: true });
  const port = await freePort();
  const logPath = join(dir, 'postgres.log');
  const logFd = openSync(logPath, 'a', 0o600);
  if (runAs !== undefined) chownSync(logPath, runAs.uid, runAs.gid);
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: dir,
    fsync: 'on',
    synchronous_commit: 'on',
    max_connections: '300',
    shared_buffers: '128MB',
    ...options.settings,
  };
  const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const [cmd, cmdArgs] = asUser(runAs, join(bin, 'postgres'), args);
  const child = spawn(cmd, cmdArgs, { stdio: ['ignore', logFd, logFd], cwd: dir });
  closeSync(logFd);
  const pid = child.pid;
  if (pid === undefined) throw new Error('postgres did not start');
  const watchdog = startWatchdog(process.pid, pid, dir);
  const info: PgClusterInfo = { host: '127.0.0.1', port, user, password, dir, pid };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (watchdog.pid !== undefined) {
        try {
          process.kill(watchdog.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT'); // fast shutdown: active sessions are ended, then a checkpoint
        const slow = setTimeout(() => child.kill('SIGQUIT'), 10_000);
        await exited;
        clearTimeout(slow);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    await waitReady(info, child, logPath, options.startTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    ...info,
    url: (database) => databaseUrl(info, database),
    createDatabase: (prefix = 'ib') => createDatabase(info, prefix),
    stop,
  };
}

/** CREATE DATABASE with a fresh random name on the cluster; returns its URL. */
export async function createDatabase(info: Pick<PgClusterInfo, 'host' | 'port' | 'user' | 'password'>, prefix = 'ib'): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const admin = new pg.Client({ connectionString: databaseUrl(info, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return databaseUrl(info, name);
}

/**
 * A real Mosquitto for tests: /usr/sbin/mosquitto on a free loopback port with a generated config, password file
 * (mosquitto_passwd) and persistence directory. Missing binaries fail the test (CI installs the Debian package).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const MOSQUITTO = '/usr/sbin/mosquitto';
export const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd';

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  /** SIGTERM (Mosquitto saves its persistence file), wait for exit. */
  stop(): Promise<void>;
  /** Starts again on the same port with the same config and persistence. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startMosquitto(users: Record<string, string>): Promise<Mosquitto> {
  for (const bin of [MOSQUITTO, MOSQUITTO_PASSWD]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian package mosquitto (npm run test:all does)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'mosquitto-test-'));
  const passwords = join(dir, 'passwords');
  writeFileSync(passwords, '');
  for (const [name, password] of Object.entries(users)) execFileSync(MOSQUITTO_PASSWD, ['-b', passwords, name, password], { stdio: 'pipe' });
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `password_file ${passwords}`,
      'persistence true',
      `persistence_location ${dir}/`,
      'log_dest stderr',
      'log_type error',
      // Started as root (CI), Mosquitto would drop to the `mosquitto` user and could not read this private temp dir.
      `user ${userInfo().username}`,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const c = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<never>((_r, reject) => c.once('exit', (code) => reject(new Error(`mosquitto exited (${String(code)}): ${stderr}`))));
    child = c;
    await Promise.race([waitForPort(port, 5000), exited]);
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    await gone;
  };
  await launch();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop,
    restart: launch,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Shared pieces of the chaos tests (docs/testing.md): a restartable server on a data dir the test owns, the convergence
 * wait (gateway store = server, every PUBACKed state on the server, nothing applied twice) and small utilities.
 * The oracle itself lives in src/soak/oracle.ts so the soak and the tests judge by the same rule.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerConfigInput } from '../../src/server/index.js';
import type { StoreReader } from '../../src/store/index.js';
import { compareSnapshots, gatewaySnapshot, serverSnapshot, type ConvergenceReport } from '../../src/daemon/convergence.js';
import { AckLog, maxApplications, serverCounters, type LossReport } from '../../src/soak/oracle.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A server on `dataDir` that can be restarted (on a new port) without losing its file. */
export interface RestartableServer {
  current: TestServer;
  readonly dataDir: string;
  restart(options?: { abrupt?: boolean; downMs?: number }): Promise<TestServer>;
  close(): Promise<void>;
}

export const RELAXED: ServerConfigInput = { rateLimit: { ratePerSecond: 10_000, burst: 10_000 } };

export async function restartableServer(dataDir: string, overrides: ServerConfigInput = {}, clock?: () => number): Promise<RestartableServer> {
  const start = (): Promise<TestServer> => startTestServer({ ...RELAXED, ...overrides }, { dataDir, ...(clock ? { clock } : {}) });
  const rs: RestartableServer = {
    current: await start(),
    dataDir,
    restart: async (options = {}) => {
      if (options.abrupt) rs.current.server.destroy();
      else await rs.current.close();
      await sleep(options.downMs ?? 0);
      rs.current = await start();
      return rs.current;
    },
    close: () => rs.current.close(),
  };
  return rs;
}

export interface Verdict {
  readonly convergence: ConvergenceReport;
  readonly loss: LossReport;
  readonly maxApplications: number;
}

export async function verdict(store: Pick<StoreReader, 'entities'>, server: TestServer, home: string, ack: AckLog): Promise<Verdict> {
  return {
    convergence: compareSnapshots(gatewaySnapshot(store), serverSnapshot(await server.server.entities(home))),
    loss: ack.missingFrom(serverCounters(server.dataDir, home)),
    maxApplications: maxApplications(server.dataDir),
  };
}

/** Waits until the gateway store equals the server and every acknowledged state is on the server. */
export async function waitConverged(read: () => Promise<Verdict>, timeoutMs: number): Promise<Verdict> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (Date.now() < deadline) {
    last = await read();
    if (last.convergence.converged && last.loss.lost === 0) return last;
    await sleep(200);
  }
  return last;
}

export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

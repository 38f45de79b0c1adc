/**
 * The sync server of the capacity run, as a child process of bench/latency.ts so that its RSS is its own. It listens
 * on 127.0.0.1 port 0, creates one home per simulated gateway (a gateway client and an app client in each, with
 * access tokens issued directly: ten thousand logins would measure the auth endpoint, not live waits) and answers
 * the parent's IPC questions: memory after a full GC, the live-wait gauges, stop. `setup-bare` starts the baseline
 * instead (bareServer).
 */
import { rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../src/log.js';
import { createSyncServer, parseServerConfig } from '../src/server/index.js';
import { tempDir } from './lib.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';

export interface BenchHome {
  readonly homeId: string;
  readonly gateway: BenchClient;
  readonly app: BenchClient;
}

export interface BenchClient {
  readonly clientId: string;
  readonly secret: string;
  readonly token: string;
}

export type ToChild =
  | { cmd: 'setup'; homes: number; maxWaitSeconds: number }
  | { cmd: 'setup-bare' }
  | { cmd: 'memory' }
  | { cmd: 'held' }
  | { cmd: 'stop' };
export type FromChild =
  | { kind: 'ready'; url: string; homes: BenchHome[] }
  | { kind: 'ready-bare'; url: string }
  | { kind: 'memory'; rssBytes: number; heapUsedBytes: number; held: number }
  | { kind: 'held'; held: number }
  | { kind: 'stopped' };

function send(message: FromChild): void {
  process.send?.(message);
}

/** A full collection twice (the second sweeps what finalizers of the first released), when --expose-gc is on. */
function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}

/**
 * The baseline: a bare node:http server that holds every request it receives (reads its body, never answers), with
 * the same server options as the sync server. What a held request costs Node itself, without any of this project.
 * `/warm` is answered at once: the warm-up before its "before" figure, as for the sync server.
 */
function bareServer(): Promise<{ url: string; held: () => number; close: () => void }> {
  const held: ServerResponse[] = [];
  const http = createServer({ requestTimeout: 30_000, headersTimeout: 15_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/warm') res.end('{}'); // the warm-up, answered at once
      else held.push(res);
    });
  });
  return new Promise((resolve) => {
    http.listen(0, '127.0.0.1', () => {
      const { port } = http.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, held: () => held.length, close: () => http.closeAllConnections() });
    });
  });
}

async function main(): Promise<void> {
  const dataDir = tempDir('ib-bench-live-');
  let server: ReturnType<typeof createSyncServer> | undefined;
  let bare: Awaited<ReturnType<typeof bareServer>> | undefined;
  const heldNow = (): number => server?.liveStats().held ?? bare?.held() ?? 0;
  process.on('message', (raw: ToChild) => {
    void (async () => {
      if (raw.cmd === 'setup') {
        const config = parseServerConfig({
          host: '127.0.0.1',
          port: 0,
          dataDir,
          hmac: { required: true },
          // One address opens every connection here: the per-address and per-client buckets are not under test.
          rateLimit: { ratePerSecond: 1_000_000, burst: 1_000_000 },
          live: { maxWaitSeconds: raw.maxWaitSeconds, maxTotal: raw.homes + 1_000 },
          log: { level: 'silent' },
        });
        server = createSyncServer({ config, logger: silentLogger() });
        const { url } = await server.listen();
        if (!(server.store instanceof SqliteStore)) throw new Error('this bench fills a SQLite store directly');
        const store = server.store.local;
        const issue = (homeId: string): BenchClient => {
          const creds = store.accounts.addClient(homeId);
          const tokens = store.accounts.issueTokens(creds.client_id, { accessTtlSeconds: 3600, refreshTtlSeconds: 3600 });
          return { clientId: creds.client_id, secret: creds.client_secret, token: tokens.accessToken };
        };
        const homes = store.db.transaction(() =>
          Array.from({ length: raw.homes }, (_, i) => {
            const homeId = `home-${i}`;
            return { homeId, gateway: issue(homeId), app: issue(homeId) };
          }),
        )();
        send({ kind: 'ready', url, homes });
      } else if (raw.cmd === 'setup-bare') {
        bare = await bareServer();
        send({ kind: 'ready-bare', url: bare.url });
      } else if (raw.cmd === 'memory') {
        collect();
        const mem = process.memoryUsage();
        send({ kind: 'memory', rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, held: heldNow() });
      } else if (raw.cmd === 'held') {
        send({ kind: 'held', held: heldNow() });
      } else {
        bare?.close();
        await server?.close();
        rmSync(dataDir, { recursive: true, force: true });
        send({ kind: 'stopped' });
        process.exit(0);
      }
    })().catch((err: unknown) => {
      process.stderr.write(`bench server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    });
  });
  // The parent going away (a Ctrl-C, a crash) must not leave this process behind.
  process.on('disconnect', () => {
    server?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  });
}

void main();

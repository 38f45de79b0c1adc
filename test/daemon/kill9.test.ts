/**
 * After kill -9 at any moment, every PUBACKed state is in the store when the daemon restarts,
 * and, once the gateway is back online, on the server. The daemon runs as a real child process (node dist/cli.js
 * run), devices are real mqtt.js clients, the server is the project's own on port 0.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import Database from 'better-sqlite3';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { spawnDaemon } from '../helpers/daemon-process.js';

const KILLS = Number(process.env.KILL9_LOOPS ?? 20);
const DEVICES = 8;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Acked {
  /** Highest PUBACKed counter per device. */
  readonly latest: Map<string, number>;
  count: number;
}

/** Publishes QoS 1 states with a rising counter until the connection dies; records what was PUBACKed. */
async function publishUntilKilled(port: number, acked: Acked, round: number, kill: () => Promise<void>, killAfterMs: number): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, clientId: `dev-${round}` });
  client.on('error', () => undefined);
  let running = true;
  const publishers = Array.from({ length: DEVICES }, async (_, d) => {
    const device = `dev-${d}`;
    let n = 0;
    while (running) {
      n += 1;
      const value = round * 1_000_000 + n;
      try {
        await client.publishAsync(`devices/${device}/state`, JSON.stringify({ counter: value }), { qos: 1 });
      } catch {
        return;
      }
      acked.latest.set(device, Math.max(acked.latest.get(device) ?? 0, value));
      acked.count += 1;
    }
  });
  await sleep(killAfterMs);
  await kill();
  running = false;
  client.end(true);
  await Promise.race([Promise.all(publishers), sleep(2000)]);
}

function storedCounters(dataDir: string): Map<string, number> {
  const db = new Database(join(dataDir, 'gateway.db'), { readonly: true });
  try {
    const rows = db.prepare("SELECT entity_id, data FROM entities WHERE entity_type = 'entity_state'").all() as Array<{ entity_id: string; data: string }>;
    return new Map(rows.map((r) => [r.entity_id, Number((JSON.parse(r.data) as { state: { counter: number } }).state.counter)]));
  } finally {
    db.close();
  }
}

describe('kill -9 loop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ib-kill9-'));
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`loses no PUBACKed state over ${KILLS} kills, and the server ends with the latest of each`, async () => {
    server = await startTestServer();
    const creds = await server.addClient('home-kill9');
    const opts = { dataDir: join(dir, 'gw'), serverUrl: server.url, clientId: creds.client_id, clientSecret: creds.client_secret };
    const acked: Acked = { latest: new Map(), count: 0 };
    let violations: string[] = [];
    for (let round = 1; round <= KILLS; round += 1) {
      const daemon = await spawnDaemon(opts);
      // Every state acknowledged before this start must be in the store the restarted daemon opened.
      const stored = storedCounters(opts.dataDir);
      for (const [device, value] of acked.latest) {
        if ((stored.get(device) ?? -1) < value) violations.push(`round ${round}: ${device} acked ${value}, stored ${stored.get(device)}`);
      }
      await publishUntilKilled(daemon.mqttPort, acked, round, () => daemon.kill9(), 100 + Math.floor(Math.random() * 400));
    }
    const stored = storedCounters(opts.dataDir);
    violations = violations.concat(
      [...acked.latest].filter(([d, v]) => (stored.get(d) ?? -1) < v).map(([d, v]) => `final: ${d} acked ${v}, stored ${stored.get(d)}`),
    );
    expect(violations).toEqual([]);
    expect(acked.count).toBeGreaterThan(KILLS * 10);

    // Back online for good: the server must end with exactly the gateway's latest state of every device.
    const daemon = await spawnDaemon(opts);
    const deadline = Date.now() + 30_000;
    let onServer = new Map<string, number>();
    while (Date.now() < deadline) {
      onServer = new Map(
        (await server.server.entities('home-kill9'))
          .filter((e) => e.entity_type === 'entity_state' && !e.deleted)
          .map((e) => [e.entity_id, Number((e.data.state as { counter: number }).counter)]),
      );
      if ([...stored].every(([d, v]) => onServer.get(d) === v)) break;
      await sleep(250);
    }
    await daemon.stop();
    expect(Object.fromEntries(onServer)).toEqual(Object.fromEntries(stored));
  }, 240_000);
});

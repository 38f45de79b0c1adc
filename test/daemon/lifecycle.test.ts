/**
 * One lifecycle (src/daemon/lifecycle.ts): components start in order and stop in reverse, a component that fails
 * to stop does not keep the others running, and a daemon whose start fails half-way releases everything it had
 * started (the MQTT port, the store).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/gateway-config.js';
import { GatewayDaemon } from '../../src/daemon/gateway-daemon.js';
import { ComponentStack } from '../../src/daemon/lifecycle.js';
import { silentLogger } from '../../src/log.js';
import { freePort } from '../../src/soak/runner.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('component lifecycle', () => {
  it('stops in reverse start order, and a failing stop does not keep the rest running', async () => {
    const events: string[] = [];
    const stack = new ComponentStack(silentLogger());
    for (const name of ['store', 'ingest', 'mqtt', 'supervisor']) {
      await stack.start({
        name,
        start: () => void events.push(`start ${name}`),
        stop: () => {
          events.push(`stop ${name}`);
          if (name === 'mqtt') throw new Error('stuck');
        },
      });
    }
    expect(stack.names()).toEqual(['store', 'ingest', 'mqtt', 'supervisor']);
    await stack.stopAll();
    expect(events).toEqual(['start store', 'start ingest', 'start mqtt', 'start supervisor', 'stop supervisor', 'stop mqtt', 'stop ingest', 'stop store']);
    expect(stack.names()).toEqual([]);
  });

  it('a start that fails half-way (control port taken) releases the MQTT port and closes the store', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const httpPort = (taken.address() as { port: number }).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'ib-lifecycle-'));
    dirs.push(dataDir);
    const mqttPort = await freePort();
    const config = loadGatewayConfig({ flags: { dataDir, mqttHost: '127.0.0.1', mqttPort, httpPort } });
    const daemon = new GatewayDaemon({ config, logger: silentLogger(), env: {} });
    try {
      await expect(daemon.start()).rejects.toThrow(/EADDRINUSE/);
    } finally {
      taken.close();
    }
    expect(daemon.store).toBeUndefined();
    // the broker had listened on mqttPort before the control listener failed: the port is free again
    const probe = createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(mqttPort, '127.0.0.1', () => resolve()));
    await new Promise<void>((r) => probe.close(() => r()));
    // the store was closed: SQLite checkpointed and removed the WAL of its last connection
    expect(existsSync(join(dataDir, 'gateway.db'))).toBe(true);
    expect(existsSync(join(dataDir, 'gateway.db-wal'))).toBe(false);
    // and a new daemon starts on the same data dir
    const again = new GatewayDaemon({ config: loadGatewayConfig({ flags: { dataDir, mqttHost: '127.0.0.1', mqttPort: 0, httpPort: 0 } }), logger: silentLogger(), env: {} });
    await again.start();
    await again.stop();
  });
});

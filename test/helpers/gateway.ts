/** Starts the real gateway daemon in-process (broker on 127.0.0.1:0, store in a temp dir) for end-to-end tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { loadGatewayConfig, type GatewayConfig } from '../../src/config/gateway-config.js';
import { GatewayDaemon } from '../../src/daemon/gateway-daemon.js';
import { silentLogger, type Logger } from '../../src/log.js';

export interface TestGateway {
  readonly daemon: GatewayDaemon;
  readonly mqttUrl: string;
  readonly dataDir: string;
  connect(clientId?: string): Promise<MqttClient>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  readonly serverUrl?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  /** Patches applied to the loaded config (sync timings for fast tests). */
  readonly tune?: (config: GatewayConfig) => GatewayConfig;
  readonly logger?: Logger;
  readonly now?: () => number;
  readonly dataDir?: string;
}

/** Fast sync timings for tests: polls every 100 ms–1 s, offline after the first failure, probes every 200 ms. */
export function fastSync(config: GatewayConfig): GatewayConfig {
  return { ...config, sync: { ...config.sync, minIntervalSeconds: 0.1, maxIntervalSeconds: 1, maxRetries: 0, offlineProbeSeconds: 0.2, criticalDebounceMs: 20 } };
}

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ib-gw-'));
  const base = loadGatewayConfig({
    flags: {
      dataDir,
      mqttHost: '127.0.0.1',
      mqttPort: 0,
      serverUrl: options.serverUrl,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
    },
  });
  // The HTTP listener (on by default, 9180) is off in these tests; startOpsGateway (test/ops) puts it on port 0.
  const config = (options.tune ?? fastSync)({ ...base, http: { ...base.http, port: null } });
  const daemon = new GatewayDaemon({ config, logger: options.logger ?? silentLogger(), ...(options.now ? { now: options.now } : {}) });
  const address = await daemon.start();
  const mqttUrl = `mqtt://127.0.0.1:${address.port}`;
  const clients: MqttClient[] = [];
  return {
    daemon,
    mqttUrl,
    dataDir,
    connect: async (clientId?: string) => {
      const client = await mqtt.connectAsync(mqttUrl, { reconnectPeriod: 0, ...(clientId ? { clientId } : {}) });
      clients.push(client);
      return client;
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await daemon.stop();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

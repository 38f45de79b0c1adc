/** One broker harness per test plus the raw sockets it opened, all closed after each test. */
import { afterEach } from 'vitest';
import { startSecureHarness, type SecureHarness, type SecureHarnessOptions } from '../security/harness.js';
import { rawClient, type RawClient } from './raw.js';

export interface BrokerTestContext {
  /** A real broker with ingest (test/security/harness.ts), closed after the test. */
  start(options?: SecureHarnessOptions): Promise<SecureHarness>;
  /** A raw MQTT socket to `port`, destroyed after the test. */
  raw(port: number, localAddress?: string): Promise<RawClient>;
}

export function useBrokerTest(): BrokerTestContext {
  let harness: SecureHarness | undefined;
  const raws: RawClient[] = [];
  afterEach(async () => {
    for (const r of raws.splice(0)) r.socket.destroy();
    await harness?.close();
    harness = undefined;
  });
  return {
    async start(options) {
      harness = await startSecureHarness(options);
      return harness;
    },
    async raw(port, localAddress) {
      const r = await rawClient(port, localAddress);
      raws.push(r);
      return r;
    },
  };
}

/**
 * The gateway's clock estimate keeps the HTTP Date header as a sanity bound (src/sync/clock.ts): a server_time that
 * runs far from the server's Date header is not adopted (counted, logged rate-limited), and clock-step warnings are
 * rate-limited — one line per interval carrying the count.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLog } from '../helpers/log-capture.js';
import { silentLogger } from '../../src/log.js';
import { formatTimestamp } from '../../src/protocol/index.js';
import { openStore } from '../../src/store/index.js';
import { dateDisagreementMs, ServerClock } from '../../src/sync/clock.js';
import { SyncClient } from '../../src/sync/index.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});


const MIN15 = 15 * 60_000;

describe('server-corrected clock against the HTTP Date header', () => {
  it('measures how far an offset lies outside what the Date header allows (1 s resolution, round trip)', () => {
    // Date 10:00:00 read between local 1000 and 1100: the server clock was in [date, date + 1 s)
    expect(dateDisagreementMs(5_000, 6_000, 1_000, 1_100)).toBe(0); // offset 5000: server 6000..6100
    expect(dateDisagreementMs(5_950, 6_000, 1_000, 1_100)).toBe(0);
    expect(dateDisagreementMs(4_000, 6_000, 1_000, 1_100)).toBe(900);
    expect(dateDisagreementMs(7_000, 6_000, 1_000, 1_100)).toBe(1000);
  });

  it('does not adopt a server_time 15 minutes ahead of the Date header; counts it; one warning line', () => {
    const { logger, lines } = captureLog();
    const local = 1_800_000_000_000;
    const clock = new ServerClock({ now: () => local, logger });
    const date = local - (local % 1000); // the server's Date header, same clock as ours
    clock.observe((local + 2) * 1000, local, local + 4, date); // sane first sample
    expect(Math.abs(clock.offsetMs)).toBeLessThan(1000);
    const before = clock.offsetMs;
    for (let i = 0; i < 20; i++) clock.observe((local + MIN15) * 1000, local, local + 4, date);
    expect(clock.offsetMs).toBe(before);
    expect(clock.stats.rejected).toBe(20);
    const warnings = lines.filter((l) => l.msg === 'server_time disagrees with the HTTP Date header: not adopted');
    expect(warnings).toHaveLength(1);
    // a server_time 3 s off stays within the default 5 s: adopted as a step
    clock.observe((local + 3_000) * 1000, local, local + 4, date);
    expect(clock.offsetMs).toBeGreaterThan(2_000);
  });

  it('with no estimate yet, takes the Date header’s own estimate instead of a disagreeing server_time', () => {
    const local = 1_800_000_000_000;
    const clock = new ServerClock({ now: () => local, logger: captureLog().logger });
    const serverNow = local + 120_000; // our clock is 2 min behind the server
    clock.observe((serverNow + MIN15) * 1000, local, local + 10, serverNow - (serverNow % 1000));
    expect(clock.known).toBe(true);
    expect(Math.abs(clock.offsetMs - 120_000)).toBeLessThan(1_000);
  });

  it('logs clock steps at most once per interval, with the count', () => {
    const { logger, lines } = captureLog();
    let local = 1_800_000_000_000;
    const clock = new ServerClock({ now: () => local, logger, warnIntervalMs: 60_000 });
    clock.observe(local * 1000, local, local); // first estimate: not a step
    for (let i = 1; i <= 95; i++) {
      local += 100;
      clock.observe((local + (i % 2 === 0 ? 0 : 10_000)) * 1000, local, local); // alternating ±10 s: 95 steps
    }
    expect(clock.stats.steps).toBe(95);
    const steps = (): Array<Record<string, unknown>> => lines.filter((l) => l.msg === 'clock step: server offset re-estimated');
    expect(steps()).toHaveLength(1);
    local += 60_000;
    clock.observe(local * 1000, local, local); // back from +10 s: the 96th step, a minute after the first line
    expect(steps()).toHaveLength(2);
    expect(steps()[1]?.count).toBe(95); // the 94 suppressed and this one
  });
});

describe('the sync client feeds the Date header of real responses to its clock', () => {
  it('a server whose server_time runs 15 minutes ahead of its own Date header does not move the gateway’s clock', async () => {
    let skewMs = 0;
    const http: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const now = Date.now(); // node:http writes the Date header from the same clock
        const reply = (value: unknown): void => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
        };
        if (req.url === '/api/v1/health') reply({ status: 'ok', version: 'x', server_time: formatTimestamp(now * 1000) });
        else if (req.url === '/api/v1/auth/token') reply({ access_token: 'a'.repeat(43), token_type: 'Bearer', expires_in: 3600, refresh_token: 'r'.repeat(43) });
        else if (req.url === '/api/v1/sync/request')
          reply({ type: 'sync_delta', server_time: formatTimestamp((now + skewMs) * 1000), changes: [], conflicts: [], more: false, cursor: null });
        else if (req.url === '/api/v1/sync/ack') reply({ type: 'sync_ack_result', acknowledged: true, server_time: formatTimestamp(now * 1000) });
        else res.writeHead(404).end();
        void body;
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => http.close(() => r())));
    const dir = mkdtempSync(join(tmpdir(), 'ib-clockdate-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
    cleanup.push(() => store.close());
    const { port } = http.address() as AddressInfo;
    const client = new SyncClient({ store, logger: captureLog().logger, serverUrl: `http://127.0.0.1:${port}`, clientId: 'gw-x', clientSecret: 's', hmac: false });
    cleanup.push(() => client.close());
    await client.runCycle(); // probe (health) + a sane sync_request
    expect(Math.abs(client.clock.offsetMs)).toBeLessThan(1_000);
    skewMs = MIN15;
    for (let i = 0; i < 3; i++) await client.runCycle();
    expect(Math.abs(client.clock.offsetMs)).toBeLessThan(1_000);
    expect(client.clock.stats.rejected).toBe(3);
    await client.probe(); // health stays sane: adopted
    expect(client.clock.stats.rejected).toBe(3);
  });
});

/**
 * A resource guarantee, measured on the server as it ships (`node dist/cli.js server` as a child process): 16
 * parallel decompression/JSON bombs against each endpoint (16 KiB of gzip inflating to 16 MiB of `{},`), and 16
 * parallel 4 MiB uncompressed pushes, leave the child's peak RSS (/proc VmHWM) under a generous 200 MB (the goal is
 * 150 MB; it was 2.2–2.5 GB before the limits) while another home's client keeps getting answers. A realistic large
 * push (1000 entity states of 40 attributes, 1.7 MB) still applies. Figures: `npm run bench:server-memory`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNonce, signRequest } from '../../src/protocol/index.js';
import { addClientCli, spawnServer, type ServerProcess } from '../helpers/server-process.js';

const PEAK_RSS_LIMIT_MB = 200;

interface Creds {
  readonly client_id: string;
  readonly client_secret: string;
}

function flood(prefix: string, size: number): Buffer {
  const count = Math.floor((size - prefix.length - 8) / 3);
  return Buffer.from(`${prefix}[${'{},'.repeat(count)}{}]${prefix.startsWith('{') ? '}' : ''}`);
}

async function post(url: string, path: string, body: Buffer, opts: { gzip?: boolean; token?: string; sign?: Creds }): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.gzip) headers['content-encoding'] = 'gzip';
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.sign) {
    Object.assign(headers, signRequest({ secret: opts.sign.client_secret, method: 'POST', path, clientId: opts.sign.client_id, body, timestampSeconds: Math.floor(Date.now() / 1000), nonce: newNonce() }));
  }
  try {
    const res = await request(`${url}${path}`, { method: 'POST', headers, body });
    await res.body.arrayBuffer();
    return res.statusCode;
  } catch {
    return 0; // connection closed on an early refusal while the body was still being sent
  }
}

async function login(url: string, creds: Creds): Promise<string> {
  const res = await request(`${url}/api/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds) });
  return ((await res.body.json()) as { access_token: string }).access_token;
}

describe('server memory under bombs (child process)', () => {
  let dataDir: string;
  let server: ServerProcess;
  let attacker: Creds;
  let victim: Creds;
  let token: string;
  let victimToken: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ib-mem-'));
    attacker = addClientCli(dataDir, 'home-attacker');
    victim = addClientCli(dataDir, 'home-victim');
    server = await spawnServer({ dataDir, configYaml: 'log: {level: info}\nrateLimit: {ratePerSecond: 1000, burst: 1000}\n' });
    token = await login(server.url, attacker);
    victimToken = await login(server.url, victim);
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(`${dataDir}.yaml`, { force: true });
  });

  it(`keeps the peak RSS under ${PEAK_RSS_LIMIT_MB} MB and answers another home throughout`, async () => {
    const bomb = gzipSync(flood('', 16 * 1024 * 1024), { level: 9 });
    const pushBomb = gzipSync(flood(`{"type":"sync_push","client_id":"${attacker.client_id}","changes":`, 16 * 1024 * 1024), { level: 9 });
    const rawPush = flood(`{"type":"sync_push","client_id":"${attacker.client_id}","changes":`, 4 * 1024 * 1024 - 64);
    const shots: Array<{ path: string; body: Buffer; gzip: boolean; auth: boolean }> = [
      { path: '/api/v1/auth/token', body: bomb, gzip: true, auth: false },
      { path: '/api/v1/auth/refresh', body: bomb, gzip: true, auth: false },
      { path: '/api/v1/sync/request', body: bomb, gzip: true, auth: true },
      { path: '/api/v1/sync/ack', body: bomb, gzip: true, auth: true },
      { path: '/api/v1/sync/push', body: pushBomb, gzip: true, auth: true },
      { path: '/api/v1/sync/push', body: rawPush, gzip: false, auth: true },
    ];
    let probing = true;
    const probeStatuses: number[] = [];
    const probe = (async () => {
      while (probing) {
        const body = Buffer.from(JSON.stringify({ type: 'sync_request', client_id: victim.client_id, last_sync: null }));
        probeStatuses.push(await post(server.url, '/api/v1/sync/request', body, { token: victimToken, sign: victim }));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const refused: number[] = [];
    for (const shot of shots) {
      const statuses = await Promise.all(
        Array.from({ length: 16 }, () => post(server.url, shot.path, shot.body, { gzip: shot.gzip, ...(shot.auth ? { token, sign: attacker } : {}) })),
      );
      refused.push(...statuses);
    }
    probing = false;
    await probe;
    const peak = server.memory().hwmMb;
    expect(peak).toBeLessThan(PEAK_RSS_LIMIT_MB);
    expect(refused.filter((s) => s === 200)).toEqual([]); // every bomb refused (413/415/503 or closed early)
    expect(probeStatuses.length).toBeGreaterThan(0);
    expect(probeStatuses.every((s) => s === 200)).toBe(true);
  });

  it('still applies a realistic large push: 1000 entity states of 40 attributes (1.7 MB, gzipped)', async () => {
    const state: Record<string, unknown> = {};
    for (let i = 0; i < 40; i++) state[`attribute_number_${i}`] = i % 3 === 0 ? `value text ${i} with some words` : i * 1.5;
    const at = new Date().toISOString();
    const changes = Array.from({ length: 1000 }, (_, i) => ({
      entity_type: 'entity_state', entity_id: `ha:sensor_${i}`, operation: 'update', updated_at: at,
      data: { device_id: `ha:sensor_${i}`, state, id: `ha:sensor_${i}` }, client_sync_id: `wide-${i}`,
    }));
    const body = gzipSync(Buffer.from(JSON.stringify({ type: 'sync_push', client_id: victim.client_id, changes })));
    expect(await post(server.url, '/api/v1/sync/push', body, { gzip: true, token: victimToken, sign: victim })).toBe(200);
  });
});

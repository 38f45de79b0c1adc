/**
 * TLS for transport encryption (seed §Data Integrity): the server serves HTTPS itself and reloads its certificate on
 * SIGHUP without dropping open connections; the gateway verifies it against a private CA (server.caFile), optionally
 * pins the key (server.pinSha256, fails closed with TLS_PIN_MISMATCH), and warns about plain http to another host.
 * Certificates come from a throwaway CA made here with openssl.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLog } from '../helpers/log-capture.js';
import { silentLogger } from '../../src/log.js';
import { openStore } from '../../src/store/index.js';
import { SyncClient, SyncTransport } from '../../src/sync/index.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { addClientCli, spawnServer } from '../helpers/server-process.js';
import { startTestServer, type TestServer, sqliteStoreOf } from '../helpers/server.js';

let pki: string;
const file = (name: string): string => join(pki, name);
const openssl = (...args: string[]): string => execFileSync('openssl', args, { cwd: pki, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A server certificate for 127.0.0.1 / localhost signed by the test CA. */
function issue(name: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=localhost');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'ext.cnf');
}

/** The key pin as an operator computes it with openssl (docs/security.md). */
function pinOf(cert: string): string {
  const pub = openssl('x509', '-in', cert, '-pubkey', '-noout');
  writeFileSync(file('pub.pem'), pub);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-in', 'pub.pem', '-outform', 'der'], { cwd: pki });
  return execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
}

function fingerprint(cert: string): string {
  return openssl('x509', '-in', cert, '-noout', '-fingerprint', '-sha256').split('=')[1]?.trim() ?? '';
}

beforeAll(() => {
  pki = mkdtempSync(join(tmpdir(), 'ib-pki-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=inbetweenies test CA');
  writeFileSync(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  issue('s1');
  issue('s2');
});
afterAll(() => rmSync(pki, { recursive: true, force: true }));


describe('HTTPS between the gateway and the server', () => {
  let ts: TestServer;
  let creds: Awaited<ReturnType<TestServer['addClient']>>;
  beforeAll(async () => {
    ts = await startTestServer({ hmac: { required: true }, tls: { certFile: file('s1.crt'), keyFile: file('s1.key') } });
    creds = await ts.addClient('home-tls');
  });
  afterAll(async () => {
    await ts.close();
  });

  async function cycle(extra: Record<string, unknown>): Promise<{ ok: boolean; code?: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'ib-tls-gw-'));
    const store = openStore({ path: join(dir, 'gateway.db'), logger: silentLogger() });
    const client = new SyncClient({ store, logger: silentLogger(), serverUrl: ts.url, clientId: creds.client_id, clientSecret: creds.client_secret, ...extra });
    try {
      await client.runCycle();
      return { ok: true };
    } catch (err) {
      return { ok: false, code: (err as { code?: string }).code };
    } finally {
      await client.destroy();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('serves https; the gateway verifies it against the private CA, and refuses it without', async () => {
    expect(ts.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await cycle({ caFile: file('ca.crt') })).toEqual({ ok: true });
    expect(await cycle({})).toEqual({ ok: false, code: 'TRANSPORT' }); // not a system CA
  });

  it('pins the server key: the right pin (base64 or hex) syncs, another fails closed with TLS_PIN_MISMATCH', async () => {
    const pin = pinOf(file('s1.crt'));
    expect(await cycle({ caFile: file('ca.crt'), pinSha256: [pin] })).toEqual({ ok: true });
    expect(await cycle({ caFile: file('ca.crt'), pinSha256: [Buffer.from(pin, 'base64').toString('hex')] })).toEqual({ ok: true });
    const before = sqliteStoreOf(ts.server).db.prepare('SELECT count(*) FROM tokens').pluck().get();
    expect(await cycle({ caFile: file('ca.crt'), pinSha256: [pinOf(file('s2.crt'))] })).toEqual({ ok: false, code: 'TLS_PIN_MISMATCH' });
    expect(sqliteStoreOf(ts.server).db.prepare('SELECT count(*) FROM tokens').pluck().get()).toBe(before); // nothing reached the server
  });

  it('the gateway daemon syncs over https with server.caFile and server.pinSha256 from its config', async () => {
    const gw = await startTestGateway({
      serverUrl: ts.url,
      clientId: creds.client_id,
      clientSecret: creds.client_secret,
      tune: (c) => ({
        ...c,
        server: { ...c.server, caFile: file('ca.crt'), pinSha256: [pinOf(file('s1.crt'))] },
        sync: { ...c.sync, minIntervalSeconds: 0.1, maxIntervalSeconds: 1, maxRetries: 0, offlineProbeSeconds: 0.2, criticalDebounceMs: 20 },
      }),
    });
    try {
      const device = await gw.connect('tls-dev');
      await device.publishAsync('devices/tls-lamp/state', JSON.stringify({ power: 'on' }), { qos: 1 });
      await waitFor(async () => (await ts.server.entities('home-tls')).some((e) => e.entity_id === 'tls-lamp'), 15_000, 'the state on the server over https');
    } finally {
      await gw.close();
    }
  });

  it('warns at start about plain http to another host, not to loopback or https', () => {
    const warnings = (serverUrl: string): number => {
      const { logger, lines } = captureLog();
      const t = new SyncTransport({ serverUrl, clientId: 'gw-x', clientSecret: 's', logger });
      void t.destroy();
      return lines.filter((l) => l.level === 40 && String(l.msg).includes('plain http')).length;
    };
    expect(warnings('http://192.0.2.10:8000')).toBe(1);
    expect(warnings('http://sync.example.org')).toBe(1);
    expect(warnings('http://127.0.0.1:8000')).toBe(0);
    expect(warnings('http://[::1]:8000')).toBe(0);
    expect(warnings('http://localhost:8000')).toBe(0);
    expect(warnings('https://sync.example.org')).toBe(0);
  });
});

/** Sends GET /api/v1/health on an open TLS socket and resolves with the status line. */
function health(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString();
      const end = text.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      if (end >= 0 && text.length >= end + 4 + length) {
        socket.off('data', onData);
        resolve(text.split('\r\n')[0] ?? '');
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write('GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
  });
}

function open(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: readFileSync(file('ca.crt')), servername: 'localhost' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('certificate reload on SIGHUP (server as a child process)', () => {
  it('keeps an open keep-alive connection on the old certificate while new connections get the new one', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ib-tls-srv-'));
    copyFileSync(file('s1.crt'), file('live.crt'));
    copyFileSync(file('s1.key'), file('live.key'));
    addClientCli(dataDir, 'home-reload');
    const server = await spawnServer({ dataDir, configYaml: `tls:\n  certFile: ${file('live.crt')}\n  keyFile: ${file('live.key')}\n` });
    const held: TLSSocket[] = [];
    try {
      expect(server.url).toMatch(/^https:/);
      const port = Number(new URL(server.url).port);
      const kept = await open(port);
      held.push(kept);
      expect(kept.getPeerX509Certificate()?.fingerprint256).toBe(fingerprint(file('s1.crt')));
      expect(await health(kept)).toBe('HTTP/1.1 200 OK');
      copyFileSync(file('s2.crt'), file('live.crt'));
      copyFileSync(file('s2.key'), file('live.key'));
      server.proc.kill('SIGHUP');
      await waitFor(() => server.lines.some((l) => l.includes('TLS certificate reloaded')), 10_000, 'the reload log line');
      expect(kept.destroyed).toBe(false);
      // the same connection (one handshake, with the old certificate) still answers
      expect(await health(kept)).toBe('HTTP/1.1 200 OK');
      expect(kept.destroyed).toBe(false);
      const fresh = await open(port);
      held.push(fresh);
      expect(fresh.getPeerX509Certificate()?.fingerprint256).toBe(fingerprint(file('s2.crt')));
      expect(await health(fresh)).toBe('HTTP/1.1 200 OK');
      // a broken file on a later SIGHUP keeps the certificate in use
      writeFileSync(file('live.key'), 'not a key');
      server.proc.kill('SIGHUP');
      await waitFor(() => server.lines.some((l) => l.includes('TLS reload failed')), 10_000, 'the failed-reload log line');
      const after = await open(port);
      held.push(after);
      expect(after.getPeerX509Certificate()?.fingerprint256).toBe(fingerprint(file('s2.crt')));
    } finally {
      for (const s of held) s.destroy();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(`${dataDir}.yaml`, { force: true });
    }
  });
});

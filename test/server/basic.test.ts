import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { forEachBackend } from '../helpers/backends.js';
import { TestClient, deviceChange, isoAt, send } from './client.js';

forEachBackend((backend) => {
  describe(`sync server basics [${backend.name}]`, () => {
    let ts: TestServer;
    beforeAll(async () => {
      ts = await startTestServer({}, { backend });
    });
    afterAll(async () => {
      await ts.close();
    });

    it('answers health with JSON', async () => {
      const res = await send(ts.url, '/api/v1/health', undefined, { method: 'GET' });
      expect(res.status).toBe(200);
      expect(res.json.status).toBe('ok');
    });

    it('runs the five phases', async () => {
      const c = new TestClient(ts.url, await ts.addClient('home-basic'));
      const tok = await c.login();
      expect(tok.token_type).toBe('Bearer');
      const first = await c.pullAll(null);
      expect(first.changes).toEqual([]);
      const result = await c.pushOk([deviceChange('dev-1', 'Lamp', isoAt(Date.now()))]);
      expect(result.applied[0]?.status).toBe('applied');
      const ack = await c.ack(first.serverTime);
      expect(ack.status).toBe(200);
      expect(ack.json).toMatchObject({ type: 'sync_ack_result', acknowledged: true });
      const other = new TestClient(ts.url, await ts.addClient('home-basic'));
      await other.login();
      const delta = await other.pullAll(first.serverTime);
      expect(delta.changes).toHaveLength(1);
      expect(delta.changes[0]).toMatchObject({ entity_type: 'device', entity_id: 'dev-1', operation: 'create' });
      expect(delta.changes[0]?.data).toMatchObject({ id: 'dev-1', name: 'Lamp' });
    });
  });

  describe(`logging [${backend.name}]`, () => {
    it('logs one line per request at debug and never a secret or a token', async () => {
      const { PassThrough } = await import('node:stream');
      const { createLogger } = await import('../../src/log.js');
      const sink = new PassThrough();
      const lines: string[] = [];
      sink.on('data', (chunk: Buffer) => lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
      const ts = await startTestServer({}, { backend, logger: createLogger({ level: 'debug', destination: sink }) });
      try {
        const creds = await ts.addClient('home-log');
        const c = new TestClient(ts.url, creds);
        await c.login();
        await c.syncRequest();
        await c.post('/api/v1/sync/push', undefined, { rawBody: '{bad json' });
        await new Promise((r) => setTimeout(r, 50));
        const requests = lines.filter((l) => l.includes('"msg":"request"'));
        expect(requests).toHaveLength(3);
        expect(requests[2]).toContain('"status":400');
        const all = lines.join('\n');
        for (const secret of [creds.client_secret, c.token, c.refreshToken]) expect(all).not.toContain(secret);
      } finally {
        await ts.close();
      }
    });
  });

  describe(`close [${backend.name}]`, () => {
    it('drains an in-flight push, then refuses new connections and closes the database', async () => {
      const { connect } = await import('node:net');
      const ts = await startTestServer({}, { backend });
      const c = new TestClient(ts.url, await ts.addClient('home-close'));
      await c.login();
      const body = JSON.stringify({ type: 'sync_push', client_id: c.creds.client_id, changes: [deviceChange('dev-c', 'Closing', isoAt(Date.now()))] });
      const { port } = new URL(ts.url);
      const socket = connect(Number(port), '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      const response = new Promise<string>((resolve) => {
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('close', () => resolve(text));
      });
      // headers and half the body: the request is in flight when close() is called
      socket.write(
        `POST /api/v1/sync/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
          `Authorization: Bearer ${c.token}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`,
      );
      await new Promise((r) => setTimeout(r, 50));
      const closed = ts.server.close();
      socket.write(body.slice(20));
      const text = await response;
      expect(text).toMatch(/^HTTP\/1\.1 200/);
      expect(text.toLowerCase()).toContain('connection: close');
      expect(text).toContain('"status":"applied"');
      await closed;
      await expect(ts.server.store.getClient('any')).rejects.toThrow(); // the store is closed
      await expect(send(ts.url, '/api/v1/health', undefined, { method: 'GET' })).rejects.toThrow();
      await ts.close();
    });
  });
});

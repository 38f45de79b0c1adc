import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt, send } from './client.js';

describe('sync server basics', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startTestServer();
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
    const c = new TestClient(ts.url, ts.addClient('home-basic'));
    const tok = await c.login();
    expect(tok.token_type).toBe('Bearer');
    const first = await c.pullAll(null);
    expect(first.changes).toEqual([]);
    const result = await c.pushOk([deviceChange('dev-1', 'Lamp', isoAt(Date.now()))]);
    expect(result.applied[0]?.status).toBe('applied');
    const ack = await c.ack(first.serverTime);
    expect(ack.status).toBe(200);
    expect(ack.json).toMatchObject({ type: 'sync_ack_result', acknowledged: true });
    const other = new TestClient(ts.url, ts.addClient('home-basic'));
    await other.login();
    const delta = await other.pullAll(first.serverTime);
    expect(delta.changes).toHaveLength(1);
    expect(delta.changes[0]).toMatchObject({ entity_type: 'device', entity_id: 'dev-1', operation: 'create' });
    expect(delta.changes[0]?.data).toMatchObject({ id: 'dev-1', name: 'Lamp' });
  });
});

describe('logging', () => {
  it('logs one line per request at debug and never a secret or a token', async () => {
    const { PassThrough } = await import('node:stream');
    const { createLogger } = await import('../../src/log.js');
    const sink = new PassThrough();
    const lines: string[] = [];
    sink.on('data', (chunk: Buffer) => lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
    const ts = await startTestServer({}, { logger: createLogger({ level: 'debug', destination: sink }) });
    try {
      const creds = ts.addClient('home-log');
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

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { TestClient, deviceChange, isoAt } from './client.js';

const PATHS = ['/api/v1/sync/request', '/api/v1/sync/push', '/api/v1/sync/ack', '/api/v1/auth/token', '/api/v1/auth/refresh'];

describe('bad input never gives a 500', () => {
  let ts: TestServer;
  let c: TestClient;
  beforeAll(async () => {
    ts = await startTestServer({ rateLimit: { ratePerSecond: 10_000, burst: 10_000 } });
    c = new TestClient(ts.url, await ts.addClient('home-fuzz'));
    await c.login();
  });
  afterAll(async () => {
    await ts.close();
  });

  it('answers arbitrary JSON bodies on every endpoint with 2xx or a typed 4xx error', async () => {
    const change = fc.record(
      {
        entity_type: fc.oneof(fc.constantFrom('device', 'devices', 'room', 'entity_state', 'toaster'), fc.string()),
        entity_id: fc.oneof(fc.string(), fc.integer()),
        operation: fc.oneof(fc.constantFrom('create', 'update', 'delete'), fc.string()),
        data: fc.oneof(fc.jsonValue(), fc.dictionary(fc.string(), fc.jsonValue())),
        updated_at: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string(), fc.integer()),
        client_sync_id: fc.oneof(fc.string(), fc.uuid()),
        sync_id: fc.string(),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          type: fc.constantFrom('sync_request', 'sync_push', 'sync_ack', 'bogus'),
          client_id: fc.oneof(fc.constant(c.creds.client_id), fc.string()),
          last_sync: fc.oneof(fc.constant(null), fc.string(), fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
          changes: fc.array(change, { maxLength: 5 }),
          entity_types: fc.array(fc.string(), { maxLength: 3 }),
          cursor: fc.string(),
          limit: fc.integer(),
          sync_completed_at: fc.string(),
          client_secret: fc.string(),
          refresh_token: fc.string(),
        },
        { requiredKeys: [] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PATHS), body, async (path, value) => {
        const res = await c.post(path, value);
        expect(res.status, JSON.stringify(value)).toBeLessThan(500);
        if (res.status >= 400) expect(res.json).toMatchObject({ type: 'error', code: expect.any(String) });
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a body nested deeper than 64 levels before parsing it (400), and data deeper than 32 levels per change', async () => {
    const nested = (depth: number): string => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    const push = (state: string, csid: string, ok: Record<string, unknown>): string =>
      `{"type":"sync_push","client_id":"${c.creds.client_id}","changes":[` +
      `{"entity_type":"entity_state","entity_id":"s","operation":"update","updated_at":"${isoAt(Date.now())}",` +
      `"client_sync_id":"${csid}","data":{"device_id":"d","state":${state}}},${JSON.stringify(ok)}]}`;
    const bomb = await c.post('/api/v1/sync/push', undefined, { rawBody: push(nested(200_000), 'deep-1', deviceChange('dev-no', 'No', isoAt(Date.now()))) });
    expect(bomb.status).toBe(400);
    expect(bomb.json.code).toBe('BAD_REQUEST');
    expect((await ts.server.entities('home-fuzz')).some((e) => e.entity_id === 'dev-no')).toBe(false);
    // data is level 1, its state object level 2: 32 nested objects as the state reach level 33 > 32
    const res = await c.post('/api/v1/sync/push', undefined, { rawBody: push(nested(32), 'deep-2', deviceChange('dev-ok', 'Fine', isoAt(Date.now()))) });
    expect(res.status).toBe(200);
    expect(res.json.applied.map((a: { status: string }) => a.status)).toEqual(['rejected', 'applied']);
    expect(res.json.applied[0].error.code).toBe('INVALID_ENTITY');
    const fits = await c.post('/api/v1/sync/push', undefined, { rawBody: push(nested(31), 'deep-3', deviceChange('dev-ok2', 'Fine', isoAt(Date.now()))) });
    expect(fits.json.applied.map((a: { status: string }) => a.status)).toEqual(['applied', 'applied']);
  });

  it('survives a request cut off mid-body and keeps serving', async () => {
    const { connect } = await import('node:net');
    const { port } = new URL(ts.url);
    await new Promise<void>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => {
        s.write(`POST /api/v1/sync/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${c.token}\r\nContent-Length: 1000\r\n\r\n{"type":`);
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 20);
      });
    });
    expect((await c.syncRequest()).status).toBe(200);
  });
});

/**
 * The fake FunkyGibbon v1 (test/helpers/funkygibbon-v1.ts) answers the captured requests as the real one did
 * (test/fixtures/funkygibbon-v1/gateway-with-funkygibbon.json): same statuses, same shapes. Without this the gateway
 * tests against the fake would prove nothing about the real server.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { send } from '../server/client.js';
import { startFakeFunkyGibbon, type FakeFunkyGibbon } from '../helpers/funkygibbon-v1.js';

const Exchanges = z.array(
  z.object({
    request: z.object({ path: z.string(), body: z.record(z.string(), z.unknown()) }),
    response: z.object({ status: z.number(), body: z.unknown() }),
  }),
);
const load = (name: string): z.infer<typeof Exchanges> =>
  Exchanges.parse(JSON.parse(readFileSync(new URL(`../fixtures/funkygibbon-v1/${name}`, import.meta.url), 'utf8')));
const CAPTURE = load('gateway-with-funkygibbon.json');

let fake: FakeFunkyGibbon | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

describe('the fake FunkyGibbon v1 answers as the captured one', () => {
  it('replays the captured exchanges with the captured statuses and answer shapes', async () => {
    fake = await startFakeFunkyGibbon();
    for (const { request, response } of CAPTURE) {
      // the captured push went gzipped (over 1 KB): that is what the 400 answered
      const gzip = request.path === '/api/v1/sync/push';
      const body =
        request.path === '/api/v1/sync/request' && response.status === 200
          ? { ...request.body, entity_types: ['devices', 'rooms'] } // the capture proxy added them
          : request.body;
      const res = await send(fake.url, request.path, body, { gzip });
      expect(res.status, request.path).toBe(response.status);
      if (response.status === 200) {
        const captured = z.record(z.string(), z.unknown()).parse(response.body);
        expect(Object.keys(res.json).sort()).toEqual(Object.keys(captured).sort());
        expect(res.json.type).toBe(captured.type);
      }
    }
    const first = await send(fake.url, '/api/v1/sync/request', { type: 'sync_request', client_id: 'x', last_sync: null, entity_types: ['devices', 'rooms'] });
    expect(first.json.changes).toEqual((CAPTURE[0]?.response.body as { changes: unknown[] }).changes);
    expect(first.headers['x-inbetweenies-signature']).toBeUndefined();
  });

  it('answers the captured Blowing-Off requests with the captured statuses and answer types', async () => {
    fake = await startFakeFunkyGibbon({ entities: [] });
    for (const { request, response } of load('blowing-off-with-funkygibbon.json')) {
      const res = await send(fake.url, request.path, request.body);
      expect(res.status, request.path).toBe(response.status);
      if (response.status === 200) expect(res.json).toEqual(expect.objectContaining({ type: (response.body as { type: string }).type }));
    }
  });

  it('has no health and no token endpoint, 500s on entity_states, drops changes without sync_id, 500s without house_id', async () => {
    fake = await startFakeFunkyGibbon();
    expect((await send(fake.url, '/api/v1/health', undefined, { method: 'GET' })).status).toBe(404);
    expect((await send(fake.url, '/api/v1/auth/token', { client_id: 'a', client_secret: 'b' })).status).toBe(404);
    const states = await send(fake.url, '/api/v1/sync/request', { type: 'sync_request', client_id: 'x', last_sync: null, entity_types: ['devices', 'entity_states'] });
    expect(states.status).toBe(500);
    const change = { entity_type: 'room', entity_id: 'r-1', operation: 'create', data: { name: 'Hall' }, client_sync_id: 'c-1' };
    const dropped = await send(fake.url, '/api/v1/sync/push', { type: 'sync_push', client_id: 'x', changes: [change] });
    expect(dropped.json).toEqual({ type: 'sync_result', applied: [], conflicts: [] });
    const noHouse = await send(fake.url, '/api/v1/sync/push', { type: 'sync_push', client_id: 'x', changes: [{ ...change, data: { name: 'Hall', sync_id: 's-1' } }] });
    expect(noHouse.status).toBe(500);
  });
});

/**
 * A fake of the original Python FunkyGibbon v1 server, built from what it answered on the wire
 * (test/fixtures/funkygibbon-v1/gateway-with-funkygibbon.json) and what it was seen to do (docs/protocol.md
 * §Compatibility): the real one cannot run here (Python, its own database). It serves the seed's three sync endpoints
 * on 127.0.0.1, port 0, and nothing else:
 * - no /api/v1/health, no /api/v1/auth/token (404 `{"detail":"Not Found"}`); the Authorization header is ignored and
 *   nothing is signed;
 * - a gzip body → 400 `{"detail":"There was an error parsing the body"}`;
 * - sync_request without `entity_types`, naming `entity_states` on a full sync, or with a zoned `last_sync` → 500
 *   (plain text);
 *   otherwise its rooms and devices changed after `last_sync` (naive compare), in its own shape;
 * - sync_push: a change without `data.sync_id` is dropped without an entry; `entity_state` or a change without
 *   `data.house_id` → 500 for the whole push; deletes are not applied (no entry); applied entries carry no
 *   `entity_type` / `entity_id`;
 * - sync_ack → `{"type":"sync_ack_response","status":"acknowledged","server_time":"…+00:00"}`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

const Captured = z.array(
  z.object({
    request: z.object({ path: z.string(), body: z.record(z.string(), z.unknown()) }),
    response: z.object({ status: z.number(), body: z.unknown() }),
  }),
);
const FgChange = z.object({
  entity_type: z.enum(['device', 'room']),
  entity_id: z.string(),
  operation: z.string(),
  data: z.record(z.string(), z.unknown()),
  updated_at: z.string(),
  sync_id: z.string(),
});
type FgChange = z.infer<typeof FgChange>;

/** The rooms and devices FunkyGibbon v1 answered the gateway's first sync_request with, as captured. */
export function capturedFunkyGibbonEntities(): FgChange[] {
  const exchanges = Captured.parse(
    JSON.parse(readFileSync(new URL('../fixtures/funkygibbon-v1/gateway-with-funkygibbon.json', import.meta.url), 'utf8')),
  );
  const first = exchanges.find((e) => e.request.path === '/api/v1/sync/request' && e.response.status === 200);
  return z.object({ changes: z.array(FgChange) }).parse(first?.response.body).changes;
}

export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: unknown;
  readonly status: number;
}

export interface FakeFunkyGibbon {
  readonly url: string;
  /** Every request, in order, with the status it got. */
  readonly requests: FakeRequest[];
  /** The stored rooms and devices by `type/id`. */
  readonly entities: Map<string, FgChange>;
  close(): Promise<void>;
}

const ZONED = /(?:Z|[+-]\d{2}:?\d{2})$/;
const HOUSE = '6c1a6a01-0214-4384-a72b-031244c278ef';

/** Python's naive isoformat of now (UTC). */
function naiveNow(): string {
  return new Date().toISOString().replace('Z', '000');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json' });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function syncRequest(state: FakeFunkyGibbon, body: Record<string, unknown>): [number, unknown] {
  const types = body.entity_types;
  const lastSync = body.last_sync;
  // entity_states: 500 on a full sync (the gateway's capture); with a last_sync it answered (Blowing-Off's capture)
  if (!Array.isArray(types) || (types.includes('entity_states') && typeof lastSync !== 'string')) return [500, 'Internal Server Error'];
  if (typeof lastSync === 'string' && ZONED.test(lastSync)) return [500, 'Internal Server Error'];
  const wanted = new Set(types.map((t) => String(t).replace(/s$/, '')));
  const since = typeof lastSync === 'string' ? lastSync : '';
  const changes = [...state.entities.values()].filter((e) => wanted.has(e.entity_type) && e.updated_at > since);
  return [200, { type: 'sync_delta', server_time: `${naiveNow()}+00:00`, changes, conflicts: [], more: false }];
}

const PushChange = z.object({
  entity_type: z.string(),
  entity_id: z.string(),
  operation: z.string(),
  data: z.record(z.string(), z.unknown()).default({}),
  updated_at: z.string().optional(),
  client_sync_id: z.string(),
});

function syncPush(state: FakeFunkyGibbon, body: Record<string, unknown>): [number, unknown] {
  const parsed = z.array(PushChange).safeParse(body.changes);
  if (!parsed.success) return [422, { detail: 'validation error' }];
  const applied: unknown[] = [];
  const writes: FgChange[] = [];
  for (const change of parsed.data) {
    if (change.entity_type !== 'device' && change.entity_type !== 'room') return [500, 'Internal Server Error'];
    const syncId = change.data.sync_id;
    if (typeof syncId !== 'string') continue; // dropped without a word
    if (typeof change.data.house_id !== 'string') return [500, 'Internal Server Error'];
    if (change.operation === 'delete') continue; // never applied
    const updatedAt = typeof change.data.updated_at === 'string' ? change.data.updated_at : (change.updated_at ?? naiveNow());
    writes.push({
      entity_type: change.entity_type,
      entity_id: change.entity_id,
      operation: 'update',
      data: { ...change.data, id: change.entity_id, version: '1', is_deleted: false },
      updated_at: updatedAt,
      sync_id: syncId,
    });
    applied.push({ client_sync_id: change.client_sync_id, server_sync_id: syncId, status: 'applied' });
  }
  for (const w of writes) state.entities.set(`${w.entity_type}/${w.entity_id}`, w);
  return [200, { type: 'sync_result', applied, conflicts: [] }];
}

/** What the capture proxy answered for the endpoints FunkyGibbon v1 lacks (unsigned, like everything it sends). */
function proxied(path: string): [number, unknown] | undefined {
  if (path === '/api/v1/health') return [200, { status: 'ok', version: 'capture-proxy', server_time: `${naiveNow()}Z` }];
  if (path === '/api/v1/auth/token') return [200, { access_token: 'proxy-token', token_type: 'Bearer', expires_in: 3600, refresh_token: 'proxy-refresh' }];
  return undefined;
}

async function answer(state: FakeFunkyGibbon, req: IncomingMessage, proxy: boolean): Promise<[number, unknown, unknown]> {
  const raw = await readBody(req);
  const path = (req.url ?? '').split('?')[0] ?? '';
  const faked = proxy ? proxied(path) : undefined;
  if (faked !== undefined) return [...faked, undefined];
  const routes = ['/api/v1/sync/request', '/api/v1/sync/push', '/api/v1/sync/ack'];
  if (req.method !== 'POST' || !routes.includes(path)) return [404, { detail: 'Not Found' }, undefined];
  if (req.headers['content-encoding'] !== undefined) return [400, { detail: 'There was an error parsing the body' }, undefined];
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return [400, { detail: 'There was an error parsing the body' }, undefined];
  }
  const record = z.record(z.string(), z.unknown()).safeParse(body);
  if (!record.success) return [422, { detail: 'validation error' }, body];
  if (path === '/api/v1/sync/request') return [...syncRequest(state, record.data), body];
  if (path === '/api/v1/sync/push') return [...syncPush(state, record.data), body];
  return [200, { type: 'sync_ack_response', status: 'acknowledged', server_time: `${naiveNow()}+00:00` }, body];
}

/**
 * `behindCaptureProxy`: health and token answered as the proxy of the captures did (a gateway on `auto` then takes
 * the server for this protocol's, and must notice from the 500s that it is not).
 */
export async function startFakeFunkyGibbon(options: { entities?: FgChange[]; behindCaptureProxy?: boolean } = {}): Promise<FakeFunkyGibbon> {
  const initial = options.entities ?? capturedFunkyGibbonEntities();
  const requests: FakeRequest[] = [];
  const entities = new Map(initial.map((e) => [`${e.entity_type}/${e.entity_id}`, e]));
  let server: Server | undefined;
  const state: FakeFunkyGibbon = {
    url: '',
    requests,
    entities,
    close: () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  };
  server = createServer((req, res) => {
    answer(state, req, options.behindCaptureProxy === true).then(
      ([status, body, parsed]) => {
        requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: parsed, status });
        send(res, status, body);
      },
      () => send(res, 500, 'Internal Server Error'),
    );
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = state.close;
  return {
    ...state,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server?.closeAllConnections();
      await close();
    },
  };
}

export { HOUSE as CAPTURED_HOUSE_ID };

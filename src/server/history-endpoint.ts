/**
 * `GET /api/v1/history?entity_id=ID[&entity_type=T][&limit=N][&before=ID]` (extension; docs/protocol.md §Sync
 * history): the versions of one entity of the client's home that lost a resolution or were overwritten, newest
 * first, paged. Signed like every sync request (the signature covers the path with its query string and the empty
 * body); the query is checked with one schema, and every parameter is bounded before anything is read.
 */
import { z } from 'zod';
import { ProtocolError } from '../errors.js';
import { describeIssues, MAX_ID_LENGTH, normaliseEntityType, type HistoryResponse } from '../protocol/index.js';
import type { HandlerDeps } from './handlers.js';
import { jsonReply, type Reply } from './http/io.js';
import type { ClientRecord } from './store/index.js';

export const HISTORY_PATH = '/api/v1/history';

const KNOWN_PARAMS = new Set(['entity_id', 'entity_type', 'limit', 'before']);
const IntText = z.string().regex(/^[1-9][0-9]{0,14}$/, 'expected a positive integer').transform(Number);

const HistoryQuerySchema = z.object({
  entity_id: z.string().min(1).max(MAX_ID_LENGTH).refine((s) => s.isWellFormed(), { message: 'must be well-formed Unicode' }),
  entity_type: z
    .string()
    .max(64)
    .refine((s) => normaliseEntityType(s) !== undefined, { message: 'expected one of entity_state, device, room' })
    .optional(),
  limit: IntText.optional(),
  before: IntText.optional(),
});

/** The query of a history request: one value per known parameter, nothing else (400 BAD_REQUEST otherwise). */
export function parseHistoryQuery(url: string): z.infer<typeof HistoryQuerySchema> {
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  const params = new URLSearchParams(query);
  const seen: Record<string, string> = {};
  for (const [key, value] of params) {
    if (!KNOWN_PARAMS.has(key)) throw new ProtocolError('BAD_REQUEST', `history: unknown parameter ${JSON.stringify(key.slice(0, 64))}`);
    if (key in seen) throw new ProtocolError('BAD_REQUEST', `history: parameter ${key} given twice`);
    seen[key] = value;
  }
  const parsed = HistoryQuerySchema.safeParse(seen);
  if (!parsed.success) throw new ProtocolError('BAD_REQUEST', `invalid history query: ${describeIssues(parsed.error).join('; ')}`);
  return parsed.data;
}

export async function handleHistory(deps: HandlerDeps, client: ClientRecord, url: string): Promise<Reply> {
  const q = parseHistoryQuery(url);
  const max = deps.config.history.maxPageSize;
  if (q.limit !== undefined && q.limit > max) throw new ProtocolError('BAD_REQUEST', `history: limit is at most ${max}`);
  const entityType = normaliseEntityType(q.entity_type ?? 'entity_state') ?? 'entity_state';
  const page = await deps.store.history({
    homeId: client.homeId,
    entityType,
    entityId: q.entity_id,
    limit: q.limit ?? Math.min(50, max),
    before: q.before ?? null,
  });
  const reply: HistoryResponse = {
    type: 'history',
    entity_type: entityType,
    entity_id: q.entity_id,
    entries: page.entries,
    more: page.more,
    next_before: page.nextBefore,
  };
  return jsonReply(200, reply);
}

/** The server profiles' pure rules (src/sync/peer-profile.ts; docs/protocol.md §Compatibility). */
import { describe, expect, it } from 'vitest';
import {
  ackAccepted,
  canPush,
  decideFromHealth,
  FUNKYGIBBON_V1_TRAITS,
  houseIdOf,
  INBETWEENIES_TRAITS,
  PeerAckAnswerSchema,
  PeerSyncResultSchema,
  readPulledChange,
  refusedGzip,
  shapePushChange,
  shapeSyncRequest,
} from '../../src/sync/peer-profile.js';

const FG = FUNKYGIBBON_V1_TRAITS;
const IB = INBETWEENIES_TRAITS;

describe('server profiles', () => {
  it('auto: a health answer means this protocol, a 404/405/501 asks for a sync probe, anything else decides nothing', () => {
    expect(decideFromHealth(200, true)).toBe('inbetweenies');
    expect(decideFromHealth(200, false)).toBeUndefined();
    expect(decideFromHealth(404, false)).toBe('probe-sync');
    expect(decideFromHealth(405, false)).toBe('probe-sync');
    expect(decideFromHealth(503, false)).toBeUndefined();
    expect(decideFromHealth(undefined, false)).toBeUndefined();
  });

  it('sync_request: FunkyGibbon v1 gets entity_types in its spelling and a naive UTC last_sync; this protocol as is', () => {
    const req = { type: 'sync_request' as const, client_id: 'gw', last_sync: '2026-11-29T18:38:21.494638+00:00', include_deleted: true };
    expect(shapeSyncRequest(FG, req)).toEqual({ ...req, last_sync: '2026-11-29T18:38:21.494638', entity_types: ['devices', 'rooms'] });
    expect(shapeSyncRequest(FG, { ...req, last_sync: '2026-11-29T19:38:21.5+01:00' }).last_sync).toBe('2026-11-29T18:38:21.500000');
    expect(shapeSyncRequest(FG, { ...req, last_sync: null }).last_sync).toBeNull();
    expect(shapeSyncRequest(IB, req)).toEqual(req);
  });

  it('push: FunkyGibbon v1 gets data.sync_id, data.house_id and naive timestamps; states and deletes are not pushed', () => {
    const change = { entity_type: 'device', entity_id: 'd-1', operation: 'update' as const, data: { name: 'Lamp', id: 'd-1' }, updated_at: '2026-11-29T18:38:26.505314Z', client_sync_id: 'c-1' };
    expect(shapePushChange(FG, change, 'h-1')).toEqual({
      ...change,
      updated_at: '2026-11-29T18:38:26.505314',
      data: { name: 'Lamp', id: 'd-1', sync_id: 'c-1', house_id: 'h-1', updated_at: '2026-11-29T18:38:26.505314' },
    });
    expect(shapePushChange(FG, { ...change, data: { ...change.data, house_id: 'mine' } }, 'h-1').data?.house_id).toBe('mine');
    expect(shapePushChange(IB, change, 'h-1')).toBe(change);
    expect(canPush(FG, 'device', 'update')).toBe(true);
    expect(canPush(FG, 'entity_state', 'update')).toBe(false);
    expect(canPush(FG, 'room', 'delete')).toBe(false);
    expect(canPush(IB, 'entity_state', 'delete')).toBe(true);
  });

  it('pull: is_deleted is a delete; the house is learnt from the data', () => {
    const change = { entity_type: 'room', entity_id: 'r', operation: 'update' as const, data: { name: 'Hall', is_deleted: true, house_id: 'h-9' }, updated_at: '2026-11-29T18:34:01.290054', sync_id: 's' };
    expect(readPulledChange(change).operation).toBe('delete');
    expect(readPulledChange({ ...change, data: { name: 'Hall', is_deleted: false } }).operation).toBe('update');
    expect(houseIdOf([{ ...change, data: { name: 'x' } }, change])).toBe('h-9');
    expect(houseIdOf([])).toBeUndefined();
  });

  it('answers: results without entity_type/entity_id, both ack answers; an ack not acknowledged is not taken', () => {
    const result = PeerSyncResultSchema.parse({ type: 'sync_result', applied: [{ client_sync_id: 'c', server_sync_id: 's', status: 'applied' }], conflicts: [] });
    expect(result.applied[0]?.entity_id).toBeUndefined();
    expect(ackAccepted(PeerAckAnswerSchema.parse({ type: 'sync_ack_response', status: 'acknowledged', server_time: '2026-11-29T18:38:21.512685+00:00' }))).toBe(true);
    expect(ackAccepted(PeerAckAnswerSchema.parse({ type: 'sync_ack_response', status: 'error' }))).toBe(false);
    expect(ackAccepted(PeerAckAnswerSchema.parse({ type: 'sync_ack_result', acknowledged: true, server_time: '2026-11-29T18:38:21Z' }))).toBe(true);
    expect(PeerAckAnswerSchema.safeParse({ type: 'something_else' }).success).toBe(false);
  });

  it('gzip refusal: a 415, or a 400 that is not this protocol’s error body; a protocol 400 is about the content', () => {
    expect(refusedGzip(415, undefined)).toBe(true);
    expect(refusedGzip(400, { detail: 'There was an error parsing the body' })).toBe(true);
    expect(refusedGzip(400, { type: 'error', code: 'BAD_REQUEST', message: 'corrupt gzip' })).toBe(false);
    expect(refusedGzip(500, undefined)).toBe(false);
  });
});

/**
 * A server that refuses gzip request bodies (FunkyGibbon v1 answers 400 `{"detail":"There was an error parsing the
 * body"}`): the transport sends the same request again plain, once, and the server profile remembers it, so every
 * later request goes plain at once and `status` says so (docs/protocol.md §Compatibility).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { silentLogger } from '../../src/log.js';
import { CachedSyncState } from '../../src/store/sync-state.js';
import { ServerPeer } from '../../src/sync/peer.js';
import { PeerSyncResultSchema } from '../../src/sync/peer-profile.js';
import { SyncTransport } from '../../src/sync/transport.js';
import { startFakeFunkyGibbon, type FakeFunkyGibbon } from '../helpers/funkygibbon-v1.js';

let fg: FakeFunkyGibbon | undefined;
let transport: SyncTransport | undefined;
afterEach(async () => {
  await transport?.close();
  await fg?.close();
});

const bigPush = {
  type: 'sync_push',
  client_id: 'gw',
  changes: Array.from({ length: 20 }, (_, i) => ({
    entity_type: 'room',
    entity_id: `room-${i}`,
    operation: 'update',
    data: { name: `Room number ${i}`, sync_id: `s-${i}`, house_id: 'h-1' },
    client_sync_id: `c-${i}`,
  })),
};

describe('a server that refuses gzip bodies', () => {
  it('gets the request again plain, once; later requests go plain at once; the profile remembers and says so', async () => {
    fg = await startFakeFunkyGibbon();
    const writes: string[] = [];
    const state = new CachedSyncState({ rows: () => [], write: async (entries) => void writes.push(...entries.map(([k]) => k)), corrupt: () => undefined });
    const peer = new ServerPeer({ setting: 'inbetweenies', token: undefined, houseId: undefined, state, logger: silentLogger(), now: Date.now });
    transport = new SyncTransport({ serverUrl: fg.url, clientId: 'gw', hmac: false, logger: silentLogger(), peer });
    const first = await transport.call({ method: 'POST', path: '/api/v1/sync/push', body: bigPush, schema: PeerSyncResultSchema });
    expect(first.value.applied).toHaveLength(20);
    expect(fg.requests.map((r) => [r.status, r.headers['content-encoding'] ?? 'plain'])).toEqual([
      [400, 'gzip'],
      [200, 'plain'],
    ]);
    await transport.call({ method: 'POST', path: '/api/v1/sync/push', body: bigPush, schema: z.unknown() });
    expect(fg.requests.slice(2).map((r) => r.headers['content-encoding'] ?? 'plain')).toEqual(['plain']);
    expect(state.get('server_profile')).toMatchObject({ gzip_refused: true });
    expect(Object.values(state.get('server_profile')?.problems ?? {}).join()).toContain('refused gzip');
    expect(writes).toContain('server_profile');
  });
});

/**
 * The server profile in the phases of a cycle (docs/protocol.md §Compatibility): how a pull and a push are shaped for
 * the server at hand, and the probe with the seed's own request that tells a plain seed server (FunkyGibbon v1: no
 * health endpoint) from an unreachable one. On this protocol's profile nothing is shaped (undefined).
 */
import {
  formatNaiveTimestamp,
  parseTimestamp,
  SyncDeltaSchema,
  type SyncRequest,
} from '../protocol/index.js';
import type { ServerClock } from './clock.js';
import type { DecidedBy, ServerPeer } from './peer.js';
import {
  FUNKYGIBBON_V1_TRAITS,
  readPulledChange,
  shapePushChange,
  shapeSyncRequest,
} from './peer-profile.js';
import { SYNC_REQUEST_PATH, type PullPeer } from './pull.js';
import type { PushPeer } from './push.js';
import type { SyncTransport } from './transport.js';

/** The pull's shapes for the profile in use; undefined on this protocol's. */
export function pullPeerOf(peer: ServerPeer): PullPeer | undefined {
  const traits = peer.effective();
  if (traits.profile === 'inbetweenies') return undefined;
  return {
    shape: (request) => shapeSyncRequest(traits, request),
    read: (delta) => {
      const changes = delta.changes.map(readPulledChange);
      peer.learnHouse(changes);
      return { ...delta, changes };
    },
  };
}

/**
 * The push's shapes for the profile in use; undefined on this protocol's. What the server cannot store stays pending
 * (never pushed, never dropped); what goes wrong with a push is recorded in words, once, and the cycle goes on: a
 * server that fails one request shape must not stop the pull that works.
 */
export function pushPeerOf(peer: ServerPeer): PushPeer | undefined {
  const traits = peer.effective();
  if (traits.profile === 'inbetweenies') return undefined;
  return {
    only: { types: traits.storable, deletes: traits.appliesDeletes },
    ready: () => {
      if (!traits.needsHouseId || peer.houseId() !== undefined) {
        peer.solved('house');
        return true;
      }
      peer.problem('house', 'nothing is pushed: FunkyGibbon v1 needs a house for rooms and devices, and its delta named none (set server.houseId)');
      return false;
    },
    shape: (change) => shapePushChange(traits, change, peer.houseId()),
    unanswered: (count) =>
      peer.problem('unanswered', `the server answered none of ${count} pushed changes (applied: []): they stay pending and are sent again`),
    refused: (err, count) => {
      peer.problem('push_refused', `the server refused a push of ${count} changes (HTTP ${err.status ?? '?'}: ${err.message}): they stay pending and are sent again next cycle`);
      return (err.status ?? 0) >= 500;
    },
    answered: () => {
      peer.solved('unanswered');
      peer.solved('push_refused');
    },
  };
}

/**
 * Asks the server the seed's own sync_request in FunkyGibbon v1's shape (explicit `entity_types`, naive `last_sync`
 * = now, so the delta is small), with the static token if any, accepting an unsigned answer. A `sync_delta` back
 * decides `funkygibbon-v1` (remembered) and teaches the clock; anything else throws.
 */
export async function probeSeedShape(
  deps: { readonly transport: SyncTransport; readonly clock: ServerClock; readonly peer: ServerPeer; readonly clientId: string; readonly nowMs: () => number },
  by: DecidedBy,
): Promise<void> {
  const request: SyncRequest = shapeSyncRequest(FUNKYGIBBON_V1_TRAITS, {
    type: 'sync_request',
    client_id: deps.clientId,
    last_sync: formatNaiveTimestamp(deps.nowMs() * 1000),
    include_deleted: false,
  });
  const token = deps.peer.token;
  const { value, sentAtMs, receivedAtMs, serverDateMs } = await deps.transport.call({
    method: 'POST',
    path: SYNC_REQUEST_PATH,
    body: request,
    schema: SyncDeltaSchema,
    unsignedOk: true,
    ...(token === undefined ? {} : { bearer: token }),
  });
  deps.peer.decide('funkygibbon-v1', by);
  const serverMicros = parseTimestamp(value.server_time);
  if (serverMicros !== undefined) deps.clock.observe(serverMicros, sentAtMs, receivedAtMs, serverDateMs);
}

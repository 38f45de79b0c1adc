/**
 * The server profile in the phases of a cycle (docs/protocol.md §Compatibility): how a pull and a push are shaped for
 * the server at hand, and the probe with the seed's own request that tells a plain seed server (FunkyGibbon v1: no
 * health endpoint) from an unreachable one. On this protocol's profile nothing is shaped (undefined).
 */
import { GatewayError, SyncHttpError } from '../errors.js';
import {
  formatNaiveTimestamp,
  HealthResponseSchema,
  parseTimestamp,
  SyncDeltaSchema,
  type SyncRequest,
} from '../protocol/index.js';
import type { ServerClock } from './clock.js';
import type { DecidedBy, ServerPeer } from './peer.js';
import {
  decideFromHealth,
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

export const HEALTH_PATH = '/api/v1/health';

export interface ProbeDeps {
  readonly transport: SyncTransport;
  readonly clock: ServerClock;
  readonly peer: ServerPeer;
  readonly clientId: string;
  readonly nowMs: () => number;
}

/**
 * GET /api/v1/health: its server_time feeds the clock estimate, and on `auto` it decides the server's profile; a 404
 * there is answered by a probe with the seed's own request (FunkyGibbon v1 has no health endpoint). A server known to
 * have none is not asked: its first delta teaches the clock. Says whether the server merges partial states (its
 * `capabilities.partial_state`; never a server without health). Throws when the server is not reachable.
 */
export async function probeHealth(deps: ProbeDeps): Promise<{ readonly partialState: boolean }> {
  const known = deps.peer.traits;
  if (known?.health === false) return { partialState: false };
  let answer;
  try {
    answer = await deps.transport.call({ method: 'GET', path: HEALTH_PATH, schema: HealthResponseSchema, signed: false });
  } catch (err) {
    if (!(err instanceof SyncHttpError) || decideFromHealth(err.status, false) !== 'probe-sync') throw err;
    if (known !== undefined && deps.peer.setting !== 'auto') {
      throw new GatewayError('BAD_RESPONSE', `the server has no ${HEALTH_PATH} (HTTP ${err.status ?? '?'}): is it FunkyGibbon v1? set server.profile to funkygibbon-v1 or auto`, { cause: err });
    }
    await probeSeedShape(deps, known === undefined ? 'sync_probe' : 'fallback');
    return { partialState: false };
  }
  if (known === undefined) deps.peer.decide('inbetweenies', 'health');
  const serverMicros = parseTimestamp(answer.value.server_time);
  if (serverMicros !== undefined) deps.clock.observe(serverMicros, answer.sentAtMs, answer.receivedAtMs, answer.serverDateMs);
  return { partialState: answer.value.capabilities?.partial_state !== undefined };
}

/**
 * Asks the server the seed's own sync_request in FunkyGibbon v1's shape (explicit `entity_types`, naive `last_sync`
 * = now, so the delta is small), with the static token if any, accepting an unsigned answer. A `sync_delta` back
 * decides `funkygibbon-v1` (remembered) and teaches the clock; anything else throws.
 */
export async function probeSeedShape(deps: ProbeDeps, by: DecidedBy): Promise<void> {
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

/**
 * The sync client's options, checked at
 * construction: the transport's, the push and pull shapes, the clock's guard, the ack rule, the server profile.
 */
import { z } from 'zod';
import type { Logger } from '../log.js';
import type { GatewayStore } from '../store/index.js';
import type { DeviceCommand } from '../store/types.js';
import type { ServerClock } from './clock.js';
import type { FaultHook } from './fault-points.js';
import { Ms } from './options.js';
import { SERVER_PROFILE_SETTINGS } from './peer-profile.js';
import { TransportConfigSchema } from './transport.js';

export const SyncClientConfigSchema = TransportConfigSchema.extend({
  /** seed §Batching: at most 1000 changes per push. */
  pushBatchSize: z.number().int().min(1).max(1000).default(1000),
  /** Ask the server for smaller pages (it caps at its own limit). */
  pageLimit: z.number().int().min(1).max(1000).optional(),
  /** Refresh the access token when less than this fraction of its lifetime is left. */
  refreshAtFraction: z.number().gt(0).lt(1).default(0.2),
  /**
   * A held live wait's HTTP timeout is its wait plus this (default 5 s): the server answers at the end of the wait,
   * so a connection that died silently (a black hole, a proxy that dropped it) is noticed within wait + margin.
   */
  liveTimeoutMarginMs: Ms.default(5_000),
  /** Progress lines for long work at most this often. */
  progressEveryMs: Ms.default(5_000),
  /** A server_time further than this from the response's HTTP Date header is not taken as the clock (clock.ts). */
  clockMaxDisagreementMs: z.number().int().min(0).default(5_000),
  /**
   * A cycle that pulled and pushed nothing sends no sync_ack unless the last ack is older than this (default 10 min):
   * the ack only lets the server purge tombstones (docs/protocol.md §Tombstones), so a later ack is enough (ackDue()).
   */
  ackMaxAgeMs: Ms.default(600_000),
  /**
   * Speak only the seed: no `caps` (whole states, no digest) and whole-state pushes, whatever the server offers
   * (docs/protocol.md §Capabilities). For a server that mishandles the extensions, and for same-run baselines.
   */
  seedOnly: z.boolean().default(false),
  /** What the server is (docs/protocol.md §Compatibility): decided from its answers on `auto`. */
  profile: z.enum(SERVER_PROFILE_SETTINGS).default('auto'),
  /** A static bearer token for a server without a token endpoint (FunkyGibbon v1). */
  token: z.string().min(1).optional(),
  /** The FunkyGibbon v1 house pushes go to (default: the one its pulled rooms name). */
  houseId: z.string().min(1).optional(),
});
export type SyncClientConfig = z.input<typeof SyncClientConfigSchema>;

export interface SyncClientOptions extends SyncClientConfig {
  readonly store: GatewayStore;
  readonly logger: Logger;
  /** Local wall clock, epoch ms (tests inject a skewed one). */
  readonly now?: () => number;
  /**
   * The server-corrected clock (docs/architecture.md §Time), shared with ingest's stamps. Left out, the client builds
   * its own on the store's sync state. Either way a clock step re-stamps the pending changes (SyncClient.rebase).
   */
  readonly clock?: ServerClock;
  /** Downlink: called with the device commands a cycle produced, as soon as their page is committed. */
  readonly onDeviceCommands?: (commands: DeviceCommand[]) => void;
  /** Phase boundaries for the crash tests (fault-points.ts); default none. */
  readonly faults?: FaultHook;
}

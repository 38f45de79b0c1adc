/**
 * The daemon's sync part, built from the gateway config (`server` and `sync` in config/gateway.example.yaml): whether
 * sync is configured at all, the sync client (transport, token, clock, the five phases), the scheduler that drives it,
 * and the scheduler as a start/stop component — or, without credentials, the `offline` mode row and a warning.
 */
import type { GatewayConfig } from '../config/gateway-config.js';
import type { Logger } from '../log.js';
import type { GatewayStore } from '../store/index.js';
import type { DeviceCommand } from '../store/types.js';
import { faultHook, SyncClient, SyncScheduler, type ServerClock, type SyncRunner } from '../sync/index.js';
import type { Component } from './lifecycle.js';

/**
 * True when server credentials are configured and sync is enabled: a client id, and a client secret — or, for a
 * server without a token endpoint (FunkyGibbon v1, docs/protocol.md §Compatibility), its profile or a static token.
 */
export function syncConfigured(config: GatewayConfig): boolean {
  const { server, sync } = config;
  const credentials = server.clientSecret !== undefined || server.token !== undefined || server.profile === 'funkygibbon-v1';
  return sync.enabled && server.clientId !== undefined && credentials;
}

export interface SyncClientDeps {
  readonly config: GatewayConfig;
  readonly store: GatewayStore;
  readonly clock: ServerClock;
  readonly logger: Logger;
  /** Where INBETWEENIES_FAULT (crash-test fault points) is read. */
  readonly env: NodeJS.ProcessEnv;
  readonly now: () => number;
  /** Server changes to send to devices, once applied. */
  readonly onDeviceCommands: (commands: DeviceCommand[]) => void;
}

/** The sync client, or undefined when sync is not configured (syncConfigured). */
export function createSyncClient(deps: SyncClientDeps): SyncClient | undefined {
  const { server, sync } = deps.config;
  if (!syncConfigured(deps.config) || server.clientId === undefined) return undefined;
  return new SyncClient({
    store: deps.store,
    clock: deps.clock,
    logger: deps.logger,
    faults: faultHook(deps.env.INBETWEENIES_FAULT),
    now: deps.now,
    serverUrl: server.url,
    clientId: server.clientId,
    ...(server.clientSecret === undefined ? {} : { clientSecret: server.clientSecret }),
    profile: server.profile,
    ...(server.token === undefined ? {} : { token: server.token }),
    ...(server.houseId === undefined ? {} : { houseId: server.houseId }),
    seedOnly: server.seedOnly,
    hmac: server.hmac,
    gzipThresholdBytes: server.gzipThresholdBytes,
    connectTimeoutMs: server.connectTimeoutMs,
    headersTimeoutMs: server.requestTimeoutMs,
    bodyTimeoutMs: server.requestTimeoutMs,
    ...(server.caFile === undefined ? {} : { caFile: server.caFile }),
    ...(server.pinSha256 === undefined ? {} : { pinSha256: server.pinSha256 }),
    clockMaxDisagreementMs: server.clockMaxDisagreementMs,
    pushBatchSize: sync.pushBatchSize,
    liveTimeoutMarginMs: Math.round(sync.liveTimeoutMarginSeconds * 1000),
    onDeviceCommands: deps.onDeviceCommands,
  });
}

export interface SchedulerDeps {
  readonly config: GatewayConfig;
  readonly runner: SyncRunner;
  readonly store: GatewayStore;
  readonly logger: Logger;
  readonly now: () => number;
}

/** The scheduler with the config's `sync` settings (seconds in the config, ms here). */
export function createScheduler(deps: SchedulerDeps): SyncScheduler {
  const s = deps.config.sync;
  return new SyncScheduler({
    runner: deps.runner,
    logger: deps.logger,
    state: deps.store.syncState,
    now: deps.now,
    minIntervalMs: Math.round(s.minIntervalSeconds * 1000),
    maxIntervalMs: Math.round(s.maxIntervalSeconds * 1000),
    criticalDebounceMs: s.criticalDebounceMs,
    uplinkWindowMs: s.uplinkWindowMs,
    live: s.live,
    liveWaitSeconds: s.liveWaitSeconds,
    maxRetries: s.maxRetries,
    probeIntervalMs: Math.round(s.offlineProbeSeconds * 1000),
  });
}

/**
 * The scheduler as a component; without one (no credentials, or sync disabled) its start records the `offline` mode
 * for `status` and says why every change is buffered.
 */
export function schedulerComponent(scheduler: SyncScheduler | undefined, store: GatewayStore, syncEnabled: boolean, log: Logger): Component {
  return {
    name: 'scheduler',
    start: () => {
      if (scheduler) {
        scheduler.start();
        return;
      }
      void store.syncState.set('mode', 'offline');
      log.warn(
        { hint: 'set server.clientId and server.clientSecret (or INBETWEENIES_CLIENT_ID / INBETWEENIES_CLIENT_SECRET)' },
        syncEnabled ? 'no server credentials configured: offline, buffering every change' : 'sync disabled: buffering every change',
      );
    },
    stop: () => scheduler?.stop(),
  };
}

/** The gateway's sync client (docs/architecture.md §Folders): transport, auth, clock, five-phase client, scheduler. */
export { SyncClient, SyncClientConfigSchema, SYNC_ACK_PATH, HEALTH_PATH, ackDue } from './client.js';
export type { SyncClientConfig, SyncClientOptions, CycleReport, AckDueInput, LiveRoundReport, PushOnlyReport } from './client.js';
export { SyncScheduler, SchedulerConfigSchema } from './scheduler.js';
export type { SchedulerConfig, SchedulerOptions, SchedulerStatus, SyncRunner, LiveStatus, PollingReason } from './scheduler.js';
export { DEFAULT_LIVE_WAIT_SECONDS, type LiveEnd, type LiveSupport } from './live.js';
export { SyncTransport, TransportConfigSchema, parseRetryAfter } from './transport.js';
export type { TransportConfig, TransportOptions, CallSpec, CallResult, TransportStats } from './transport.js';
export { TokenManager } from './auth.js';
export { ServerClock, bestSample, offsetOf } from './clock.js';
export type { ClockSample, ServerClockOptions } from './clock.js';
export { retryDelayMs, nextPollInterval, isOffline, localChangeDelay } from './backoff.js';
export { toWireChange } from './push.js';
export { faultHook, NO_FAULTS, type FaultHook, type FaultPoint } from './fault-points.js';

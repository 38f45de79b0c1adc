export * from './adapter.js';
export * from './critical.js';
export * from './downlink.js';
export * from './group-commit.js';
export * from './ingest.js';
export * from './metrics.js';
export * from './router.js';
export { APPLY_LOCAL_UPDATES, applyLocalUpdates, roomIdFor, type LocalWriteArgs, type LocalWriteCounts } from './local-writes.js';
export { createNativeAdapter, type NativeAdapterOptions } from './adapters/native.js';

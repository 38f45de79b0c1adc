export * from './adapter.js';
export * from './critical.js';
export * from './downlink.js';
export * from './group-commit.js';
export * from './ingest.js';
export * from './metrics.js';
export * from './router.js';
export { createNativeAdapter, type NativeAdapterOptions } from './adapters/native.js';

/** Moved to src/util/rate-limited-log.ts (the sync server and the gateway clock use it too); kept for importers here. */
export * from '../util/rate-limited-log.js';

export * from './broker.js';
export * from './rate-limited-log.js';

export * from './entity-types.js';
export * from './timestamps.js';
export * from './messages.js';
export * from './entities.js';
export * from './conflict.js';
export * from './gzip.js';
export * from './hmac.js';
export * from './json-text.js';

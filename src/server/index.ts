export { createSyncServer, openSyncServer } from './server.js';
export type { SyncServer, SyncServerOptions, ListenAddress } from './server.js';
export { ServerConfigSchema, loadServerConfig, parseServerConfig } from './config.js';
export type { ServerConfig, ServerConfigInput } from './config.js';
export type { ClientCredentials, EntityView } from './store/index.js';
export type { StoredEntity, SyncStore } from './store/contract.js';
export { runServerCommand } from './cli.js';
export type { LiveWaitStats } from './live/index.js';

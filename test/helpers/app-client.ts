/** Another client of a home that edits entities on the server directly (src/sim/app-client.ts), for tests. */
import { silentLogger } from '../../src/log.js';
import { connectApp as connect, type AppClient, type AppCredentials } from '../../src/sim/app-client.js';

export type { AppClient };

export function connectApp(url: string, creds: AppCredentials): Promise<AppClient> {
  return connect(url, creds, silentLogger());
}

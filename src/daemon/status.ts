/** What the daemon reports about itself (GET /status, `status`, the systemd STATUS= line). */
import type { BrokerAddress } from '../broker/index.js';
import type { SyncStatus } from '../store/index.js';
import type { SchedulerStatus } from '../sync/index.js';

export interface DaemonStatus extends SyncStatus {
  readonly scheduler: SchedulerStatus | null;
  readonly syncConfigured: boolean;
  readonly brokerClients: number;
  readonly mqtt: BrokerAddress | null;
}

/** What the daemon reports about itself (GET /status, `status`, the systemd STATUS= line). */
import type { BrokerAddress } from '../broker/index.js';
import type { ServerProfileState, SyncStatus } from '../store/index.js';
import type { SchedulerStatus } from '../sync/index.js';
import type { ConvergenceStatus } from '../sync/convergence.js';

export interface DaemonStatus extends SyncStatus {
  readonly scheduler: SchedulerStatus | null;
  readonly syncConfigured: boolean;
  /** The convergence digest checks and repairs (docs/protocol.md §Convergence digest); null without sync. */
  readonly convergence: ConvergenceStatus | null;
  readonly brokerClients: number;
  readonly mqtt: BrokerAddress | null;
  /** The server's profile and what is wrong with it, in words (docs/protocol.md §Compatibility); null before first contact. */
  readonly server: ServerProfileState | null;
}

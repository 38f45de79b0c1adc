/** What every phase of a cycle gets from the client (pull.ts, push.ts). */
import type { Logger } from '../log.js';
import type { DeviceCommand } from '../store/types.js';
import type { FaultHook } from './fault-points.js';
import type { CallResult, CallSpec } from './transport.js';

export interface PhaseDeps {
  /** An authenticated request (bearer token, renewed once on AUTH_EXPIRED). */
  readonly call: <T>(spec: CallSpec<T>) => Promise<CallResult<T>>;
  readonly clientId: string;
  readonly logger: Logger;
  readonly progressEveryMs: number;
  /** Hands device commands to the daemon (downlink). */
  readonly emit: (commands: DeviceCommand[]) => void;
  /** Phase boundaries for the crash tests (fault-points.ts); a no-op in production. */
  readonly fault: FaultHook;
}

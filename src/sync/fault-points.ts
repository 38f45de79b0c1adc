/**
 * Fault points for the crash-matrix tests (docs/testing.md): a no-op unless armed with a phase boundary, in which case
 * the process kills itself with SIGKILL when it reaches that boundary — a deterministic power cut at an exact phase of
 * a sync cycle. The daemon arms it from `INBETWEENIES_FAULT` (`name` fires on the first hit, `name:N` on the N-th);
 * production never sets it. ("After the push is sent, before its result arrives" is hit from outside instead:
 * test/chaos holds the push response at a TCP proxy and kills the process.)
 */

export type FaultPoint =
  /** sync_request answered, delta page not yet applied (seed §Sync Flow step 1→2). */
  | 'after_request'
  /** a delta page committed and more pages to come (step 2, mid-apply of a paged delta). */
  | 'during_delta_apply'
  /** sync_result received, not yet committed to the outbox (step 4). */
  | 'after_push_result'
  /** everything committed, sync_ack not yet sent (step 5). */
  | 'before_ack';

/** Called at each boundary; the injected one may end the process. */
export type FaultHook = (point: FaultPoint) => void;

export const NO_FAULTS: FaultHook = () => undefined;

/**
 * A hook armed by `spec` (`name` or `name:N`; undefined or empty: no faults). `kill` ends the process (default: log
 * one JSON line, then SIGKILL this process).
 */
export function faultHook(spec: string | undefined, kill: (point: FaultPoint) => void = selfKill): FaultHook {
  if (spec === undefined || spec === '') return NO_FAULTS;
  const [name = '', nth] = spec.split(':');
  const n = nth === undefined ? 1 : Number(nth);
  let remaining = Number.isInteger(n) && n > 0 ? n : 1;
  return (point) => {
    if (point !== name) return;
    remaining -= 1;
    if (remaining === 0) kill(point);
  };
}

function selfKill(point: FaultPoint): void {
  process.stdout.write(`${JSON.stringify({ level: 60, msg: 'fault point reached: SIGKILL', fault: point })}\n`);
  process.kill(process.pid, 'SIGKILL');
}

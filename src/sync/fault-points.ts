/**
 * Fault points for the crash-matrix tests (issue 6): a no-op unless INBETWEENIES_FAULT names a phase boundary, in
 * which case the process kills itself with SIGKILL when it reaches that boundary — a deterministic power cut at an
 * exact phase of a sync cycle. `INBETWEENIES_FAULT=name` fires on the first hit, `name:N` on the N-th.
 * The variable is read once per process; production never sets it. ("After the push is sent, before its result
 * arrives" is hit from outside instead: test/chaos holds the push response at a TCP proxy and kills the process.)
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

interface Armed {
  readonly name: string;
  remaining: number;
}

function parse(value: string | undefined): Armed | undefined {
  if (value === undefined || value === '') return undefined;
  const [name = '', nth] = value.split(':');
  const n = nth === undefined ? 1 : Number(nth);
  return { name, remaining: Number.isInteger(n) && n > 0 ? n : 1 };
}

const armed = parse(process.env.INBETWEENIES_FAULT);

/** Kills this process with SIGKILL when `point` is the armed fault (and its hit count is reached); else nothing. */
export function faultPoint(point: FaultPoint): void {
  if (armed === undefined || armed.name !== point) return;
  armed.remaining -= 1;
  if (armed.remaining > 0) return;
  process.stdout.write(`${JSON.stringify({ level: 60, msg: 'fault point reached: SIGKILL', fault: point })}\n`);
  process.kill(process.pid, 'SIGKILL');
}

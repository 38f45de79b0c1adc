/**
 * Held sync_requests (docs/protocol.md §Live waits, an extension of the seed's §Polling "instant push for critical
 * changes" and §Future Enhancements "server-initiated sync"). A request with `wait` whose delta is empty is held
 * until another client commits in its home (ChangeNotifier), its wait runs out (one shared TimerWheel), the server
 * shuts down, or the client goes away; then its delta is computed again with a fresh watermark and answered.
 *
 * No change can be missed between "the delta is empty" and "the request is held": the waiter subscribes BEFORE the
 * first delta is computed, so a commit after that computation always reaches it, and every answer is a fresh delta.
 *
 * Bounds: `maxPerClient` held waits per client (429 TOO_MANY_WAITS beyond), `maxTotal` per process (503 SERVER_BUSY).
 * A held wait holds no rate-limit token: it took one when it was opened, like any request, and nothing while held.
 */
import { ProtocolError } from '../../errors.js';
import type { ServerConfig } from '../config.js';
import type { Reply } from '../http/io.js';
import type { ChangeEvent, ChangeNotifier } from './notifier.js';
import { TimerWheel, type Expirable } from './wheel.js';

/** Why a wait ended; `data`: the delta was not empty when the request arrived, so it was not held at all. */
export type LiveReason = 'data' | 'change' | 'timeout' | 'shutdown';

export interface LiveOutcome {
  readonly reason: LiveReason;
  readonly waitedMs: number;
}

/** A delta computed for a held request, and whether it is empty (no changes, no conflicts). */
export interface DeltaAnswer {
  readonly reply: Reply;
  readonly empty: boolean;
}

/** The client's side of a held request: whether it is gone already, and a way to hear when it goes. */
export interface HeldConnection {
  readonly destroyed: boolean;
  on(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

export interface HoldSpec {
  readonly clientId: string;
  readonly homeId: string;
  /** Already capped by `waitSecondsFor`. */
  readonly waitSeconds: number;
  readonly connection: HeldConnection;
}

export interface LiveWaitStats {
  /** Held right now (scheduled on the wheel). */
  held: number;
  /** Clients holding at least one wait. */
  clients: number;
  opened: number;
  /** Wake-ups by another client's commit (each recomputes the delta; an empty one keeps holding). */
  wakeups: number;
  answered: Record<LiveReason, number>;
  /** Released because the client closed the connection while held. */
  disconnected: number;
  refusedPerClient: number;
  refusedServerFull: number;
}

export interface LiveWaitsOptions {
  readonly config: ServerConfig['live'];
  readonly notifier: ChangeNotifier;
  /** Monotonic ms for hold durations and deadlines (default performance.now). */
  readonly now?: () => number;
  readonly tickMs?: number;
}

type Signal = 'change' | 'timeout' | 'shutdown' | 'gone';
const TERMINAL: ReadonlySet<Signal> = new Set(['timeout', 'shutdown', 'gone']);
/** Retry-After of a 503 SERVER_BUSY: held waits end within maxWaitSeconds, most much sooner. */
const SERVER_BUSY_RETRY_SECONDS = 5;
/** Never sent (the connection is gone); only what the request log shows. */
const GONE: Reply = { status: 499, body: '{"type":"error","code":"BAD_REQUEST","message":"client closed the connection while held"}' };

/** One held request: a listener of its home, an item of the wheel, and a one-slot mailbox for the hold loop. */
class Waiter implements Expirable {
  wheelTick: number | undefined;
  private pending: Signal | undefined;
  private resolve: ((signal: Signal) => void) | undefined;

  constructor(private readonly clientId: string) {}

  readonly onChange = (event: ChangeEvent): void => {
    if (event.originClientId !== this.clientId) this.signal('change');
  };

  readonly onClose = (): void => this.signal('gone');

  expire(): void {
    this.signal('timeout');
  }

  signal(signal: Signal): void {
    const resolve = this.resolve;
    if (resolve !== undefined) {
      this.resolve = undefined;
      resolve(signal);
    } else if (this.pending === undefined || !TERMINAL.has(this.pending)) {
      this.pending = signal; // a terminal signal is never overwritten by a later change
    }
  }

  next(): Promise<Signal> {
    const pending = this.pending;
    if (pending !== undefined) {
      this.pending = undefined;
      return Promise.resolve(pending);
    }
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }
}

export class LiveWaits {
  private readonly config: ServerConfig['live'];
  private readonly notifier: ChangeNotifier;
  private readonly now: () => number;
  private readonly wheel: TimerWheel<Waiter>;
  private readonly perClient = new Map<string, number>();
  private closing = false;
  private readonly counters: Omit<LiveWaitStats, 'held' | 'clients'> = {
    opened: 0,
    wakeups: 0,
    answered: { data: 0, change: 0, timeout: 0, shutdown: 0 },
    disconnected: 0,
    refusedPerClient: 0,
    refusedServerFull: 0,
  };

  constructor(options: LiveWaitsOptions) {
    this.config = options.config;
    this.notifier = options.notifier;
    this.now = options.now ?? (() => performance.now());
    this.wheel = new TimerWheel<Waiter>({ now: this.now, ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }) });
  }

  /** The capability GET /api/v1/health advertises, or undefined when live waits are off. */
  get maxWaitSeconds(): number | undefined {
    return this.config.enabled ? this.config.maxWaitSeconds : undefined;
  }

  /**
   * How long a sync_request may be held: 0 when live waits are off, the request has no `wait`, or it continues a
   * paged sync (a cursor: its watermark is fixed, the client is mid-sync and wants the next page now).
   */
  waitSecondsFor(request: { readonly wait?: number | undefined; readonly cursor?: string | null | undefined }): number {
    if (!this.config.enabled || request.cursor || request.wait === undefined) return 0;
    return Math.min(request.wait, this.config.maxWaitSeconds);
  }

  /**
   * Answers a live request: at once when its delta is not empty, else after a wake-up. `answer` computes the delta
   * (with a fresh watermark each time) and reports whether it is empty; a wake-up whose delta turns out empty (a
   * change this request filters out) keeps holding until the deadline.
   */
  async hold(spec: HoldSpec, answer: (outcome: LiveOutcome) => DeltaAnswer | Promise<DeltaAnswer>): Promise<Reply> {
    if (this.closing) return this.count((await answer({ reason: 'shutdown', waitedMs: 0 })).reply, 'shutdown');
    this.admit(spec.clientId);
    const waiter = new Waiter(spec.clientId);
    const started = this.now();
    const unsubscribe = this.notifier.subscribe(spec.homeId, waiter.onChange);
    this.wheel.add(waiter, spec.waitSeconds * 1000);
    spec.connection.on('close', waiter.onClose);
    this.perClient.set(spec.clientId, (this.perClient.get(spec.clientId) ?? 0) + 1);
    this.counters.opened += 1;
    try {
      if (spec.connection.destroyed) waiter.signal('gone');
      let reason: LiveReason = 'data';
      for (;;) {
        // Only an answer that is sent stays referenced: an empty delta is dropped while the request is held.
        const reply = await this.replyUnlessEmpty(answer, reason, Math.round(this.now() - started));
        if (reply !== undefined) return reply;
        const signal = await waiter.next();
        if (signal === 'gone') {
          this.counters.disconnected += 1;
          return GONE;
        }
        if (signal === 'change') this.counters.wakeups += 1;
        reason = signal;
      }
    } finally {
      unsubscribe();
      this.wheel.remove(waiter);
      spec.connection.off('close', waiter.onClose);
      this.release(spec.clientId);
    }
  }

  /** Server shutdown: every held wait is answered now (its delta, usually empty, reason `shutdown`); new ones too. */
  shutdown(): void {
    this.closing = true;
    this.wheel.forEach((waiter) => waiter.signal('shutdown'));
  }

  /** Server destroy: held waits are dropped with their connections; releases the timer. */
  abort(): void {
    this.closing = true;
    this.wheel.forEach((waiter) => waiter.signal('gone'));
    this.wheel.clear();
  }

  stats(): LiveWaitStats {
    return {
      held: this.wheel.size,
      clients: this.perClient.size,
      ...this.counters,
      answered: { ...this.counters.answered },
    };
  }

  private admit(clientId: string): void {
    if ((this.perClient.get(clientId) ?? 0) >= this.config.maxPerClient) {
      this.counters.refusedPerClient += 1;
      throw new ProtocolError(
        'TOO_MANY_WAITS',
        `this client already holds ${this.config.maxPerClient} live wait(s); answer or close one before opening another`,
        { retryAfterSeconds: 1 },
      );
    }
    if (this.wheel.size >= this.config.maxTotal) {
      this.counters.refusedServerFull += 1;
      throw new ProtocolError('SERVER_BUSY', `the server holds its maximum of ${this.config.maxTotal} live waits; poll or retry later`, {
        retryAfterSeconds: SERVER_BUSY_RETRY_SECONDS,
      });
    }
  }

  private release(clientId: string): void {
    const n = (this.perClient.get(clientId) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(clientId);
    else this.perClient.set(clientId, n);
  }

  /** The answer for `reason`, unless it is an empty delta the request may go on holding (`data` or `change`). */
  private async replyUnlessEmpty(
    answer: (outcome: LiveOutcome) => DeltaAnswer | Promise<DeltaAnswer>,
    reason: LiveReason,
    waitedMs: number,
  ): Promise<Reply | undefined> {
    const { reply, empty } = await answer({ reason, waitedMs });
    return empty && (reason === 'data' || reason === 'change') ? undefined : this.count(reply, reason);
  }

  private count(reply: Reply, reason: LiveReason): Reply {
    this.counters.answered[reason] += 1;
    return reply;
  }
}

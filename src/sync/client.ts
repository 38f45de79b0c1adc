/**
 * The sync client: one cycle runs the five phases of seed §Sync Flow — pull (request + delta pages), push (outbox
 * batches + results), ack (sync_completed_at = the delta's server_time, docs/protocol.md §Watermark and delta). It owns
 * the transport, the token manager and the server-corrected clock; the scheduler (scheduler.ts) decides when they run.
 */
import type { z } from 'zod';
import { GatewayError, SyncHttpError } from '../errors.js';
import type { Logger } from '../log.js';
import { HealthResponseSchema, parseTimestamp, type SyncAck } from '../protocol/index.js';
import type { GatewayStore, LastError, LastResult, SyncStateEntries } from '../store/index.js';
import type { DeviceCommand } from '../store/types.js';
import { TokenManager } from './auth.js';
import { ConvergenceChecker } from './convergence.js';
import { ServerClock } from './clock.js';
import { NO_FAULTS, type FaultHook } from './fault-points.js';
import { validateOptions } from './options.js';
import { liveEnd, liveTimeoutMs, probeLiveWait, type LiveSupport } from './live.js';
import type { PhaseDeps } from './phase.js';
import { pull, type PullDeps, type PullReport } from './pull.js';
import { push } from './push.js';
import type { PushedVersion } from './push-apply.js';
import { ackDue, elapsedMs, type CycleReport, type LiveRoundReport, type PushOnlyReport } from './reports.js';
import { PushSettlements } from './settlements.js';
import { ServerPeer } from './peer.js';
import { HEALTH_PATH, probeHealth, probeSeedShape, pullPeerOf, pushPeerOf, type ProbeDeps } from './peer-phases.js';
import { ackAccepted, decideFromHealth, PeerAckAnswerSchema, timestampFor } from './peer-profile.js';
import { SyncTransport, type CallResult, type CallSpec } from './transport.js';
import { SyncClientConfigSchema, type SyncClientOptions } from './client-config.js';

export { SyncClientConfigSchema, type SyncClientConfig, type SyncClientOptions } from './client-config.js';

export { ackDue, type AckDueInput, type CycleReport, type LiveRoundReport, type PushOnlyReport } from './reports.js';

export const SYNC_ACK_PATH = '/api/v1/sync/ack';
/** Status rows whose outcome did not change are written at most this often (the rest is remembered). */
const STATUS_WRITE_EVERY_MS = 60_000;
export { HEALTH_PATH };

export class SyncClient {
  readonly config: z.output<typeof SyncClientConfigSchema>;
  /** The server-corrected clock: ingest stamps updated_at with it (docs/architecture.md §Time). */
  readonly clock: ServerClock;
  readonly transport: SyncTransport;
  readonly store: GatewayStore;
  readonly #tokens: TokenManager;
  /** The server's profile: what it signs, takes and stores (peer.ts). */
  readonly peer: ServerPeer;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #onCommands: (commands: DeviceCommand[]) => void;
  readonly #fault: FaultHook;
  /** The next cycle pulls from last_sync null and reconciles; cleared when such a pull completes. */
  #fullRequested = false;
  /** The convergence digest check and its repairs (docs/protocol.md §Convergence digest). */
  readonly convergence: ConvergenceChecker;
  /** The server merges partial entity_states (health `capabilities.partial_state`); unknown until probed. */
  #partialPush: boolean | undefined;

  constructor(options: SyncClientOptions) {
    const { store, logger, now, clock, onDeviceCommands, faults, ...config } = options;
    if (typeof store?.relaxed !== 'function') throw new GatewayError('CONFIG_INVALID', 'sync client: expected store to be an open GatewayStore (openStore())');
    this.config = validateOptions(SyncClientConfigSchema, config, 'sync client options');
    this.store = store;
    this.#log = logger.child({ module: 'sync' });
    this.#now = now ?? Date.now;
    this.#onCommands = onDeviceCommands ?? (() => undefined);
    this.#fault = faults ?? NO_FAULTS;
    this.clock = clock ?? new ServerClock({ now: this.#now, state: store.syncState, logger, maxDateDisagreementMs: this.config.clockMaxDisagreementMs });
    this.clock.onStep((deltaMs) => this.rebase(deltaMs));
    this.convergence = new ConvergenceChecker({
      store,
      logger: this.#log,
      now: this.#now,
      settledAfter: (serverMicros) => this.#settlements.after(serverMicros),
    });
    const { profile, token, houseId, ...transportConfig } = this.config;
    this.peer = new ServerPeer({ setting: profile, token, houseId, state: store.syncState, logger, now: this.#now });
    this.transport = new SyncTransport({ ...transportConfig, logger, now: this.#now, timestampSeconds: () => this.clock.nowMs() / 1000, peer: this.peer });
    this.#tokens = new TokenManager({
      transport: this.transport,
      state: store.syncState,
      logger,
      clientId: this.config.clientId,
      clientSecret: this.config.clientSecret ?? '',
      refreshAtFraction: this.config.refreshAtFraction,
      now: this.#now,
    });
  }

  /**
   * The operator's full resync (`sync --full`, the reconcile job): the next cycle pulls everything from last_sync
   * null and removes what the server no longer has (docs/protocol.md §Tombstones). The watermark stays until that pull
   * has saved the new one, so a failed attempt is simply tried again by the next cycle.
   */
  requestFullResync(): void {
    this.#fullRequested = true;
  }

  /** Whether the next cycle will be a requested full resync. */
  get fullResyncRequested(): boolean {
    return this.#fullRequested;
  }

  /** One full cycle, five phases. Throws the typed error of the phase that failed; the outbox keeps everything. */
  runCycle(): Promise<CycleReport> {
    return this.#recorded(() => this.#withResign(() => this.#cycle()));
  }

  /**
   * One live wait (docs/protocol.md §Live waits): the pull phase with `wait` on its first request, held by the server
   * until the home changes or the wait runs out, with an HTTP timeout of the wait plus `liveTimeoutMarginMs`; its
   * pages are applied and their device commands published as they come. No push, and an ack only when due by age
   * (ackDue with nothing moved): a live wait is answered for every change burst. `signal` aborts it at once.
   */
  liveRound(options: { readonly waitSeconds: number; readonly signal?: AbortSignal }): Promise<LiveRoundReport> {
    return this.#recorded(() => this.#withResign(() => this.#liveRound(options)), options.signal);
  }

  /** The push phase alone (phases 3–4): the outbox now, on a connection of its own when a live wait is held. */
  pushPending(): Promise<PushOnlyReport> {
    return this.#recorded(async () => {
      const started = performance.now();
      if (!this.clock.known || this.peer.traits === undefined || this.#partialPush === undefined) await this.probe();
      const { common } = this.#phase();
      const pushed = await this.#push(common);
      return { ...pushed, pulled: 0, durationMs: elapsedMs(started) };
    });
  }

  /** Whether the server holds live waits (GET /api/v1/health capabilities); throws when it cannot be reached. */
  async probeLive(): Promise<LiveSupport | undefined> {
    if (this.peer.traits?.health === false) return undefined; // a server without health has no live waits: polled
    return probeLiveWait((spec) => this.transport.call(spec));
  }

  /**
   * Runs `work` and keeps the status rows (diagnostics: never failing the work, #saveStatus). Work aborted by
   * `signal` (the daemon stopping) records nothing.
   */
  async #recorded<R extends { readonly pulled: number; readonly pushed: number; readonly durationMs: number }>(
    work: () => Promise<R>,
    signal?: AbortSignal,
  ): Promise<R> {
    const at = this.#now();
    try {
      const report = await work();
      const r: Partial<CycleReport> = report;
      const doneAt = this.#now(); // a live wait ends long after it began
      this.#saveStatus(doneAt, { ok: true, at: doneAt, pulled: report.pulled, pushed: report.pushed, conflicts: r.conflicts ?? 0, rejected: r.rejected ?? 0, durationMs: report.durationMs });
      return report;
    } catch (err) {
      if (signal?.aborted === true) throw err;
      const code = err instanceof GatewayError ? err.code : 'INTERNAL';
      this.#saveStatus(at, { ok: false, at }, { code, message: err instanceof Error ? err.message : String(err), at });
      throw err;
    }
  }

  /**
   * Status rows are diagnostics (`status --data-dir`): written when the outcome flips (ok ↔ failed, another error
   * code) or the file's copy is a minute old, remembered otherwise (store/sync-state.ts `remember`) — an SD card is
   * spared a commit per cycle. Never fails the cycle.
   */
  #saveStatus(at: number, result: LastResult, error?: LastError): void {
    const state = this.store.syncState;
    const flipped = state.get('last_result')?.ok !== result.ok || (error !== undefined && state.get('last_error')?.code !== error.code);
    const entries: SyncStateEntries = result.ok ? { last_sync_at: at, last_result: result } : { last_result: result, ...(error ? { last_error: error } : {}) };
    if (!flipped && at - this.#statusWrittenAt < STATUS_WRITE_EVERY_MS && at >= this.#statusWrittenAt) {
      state.remember(entries);
      return;
    }
    this.#statusWrittenAt = at;
    void state.setMany(entries);
  }

  #statusWrittenAt = -Infinity;

  async #withResign<R>(run: () => Promise<R>): Promise<R> {
    try {
      return await run();
    } catch (err) {
      // A server-side BAD_SIGNATURE is most often a stale timestamp: our clock offset is unknown or stepped.
      if (!(err instanceof SyncHttpError) || err.code !== 'BAD_SIGNATURE') throw err;
      this.#log.warn({ reason: err.message }, 'server refused our signature; re-estimating the clock offset and retrying once');
      await this.probe();
      return run();
    }
  }

  /** What every phase gets, with a counter of the device commands this piece of work emitted. */
  #phase(): { common: PhaseDeps & { nowMs: () => number }; commands: () => number } {
    let commands = 0;
    const emit = (list: DeviceCommand[]): void => {
      commands += list.length;
      this.#emit(list);
    };
    const call = <T>(spec: CallSpec<T>): Promise<CallResult<T>> => this.#authed(spec);
    const common = { call, clientId: this.config.clientId, logger: this.#log, progressEveryMs: this.config.progressEveryMs, emit, fault: this.#fault, nowMs: this.#now };
    return { common, commands: () => commands };
  }

  async #cycle(): Promise<CycleReport> {
    const started = performance.now();
    const sent0 = this.transport.stats.bytesSent;
    const received0 = this.transport.stats.bytesReceived;
    // First contact: HMAC timestamps and stamps need the offset, and on `auto` the server's profile is not known yet;
    // the health answer also says whether the server merges partial states.
    if (!this.clock.known || this.peer.traits === undefined || this.#partialPush === undefined) await this.probe();
    const { common, commands } = this.#phase();
    const full = this.#fullRequested;
    const pulled = await this.#pull(common, { full });
    if (full && pulled.fullResync) this.#fullRequested = false;
    const pushed = await this.#push(common);
    const acked = await this.#ackIfDue(pulled, pulled.pulled + pushed.pushed);
    const report: CycleReport = {
      pulled: pulled.pulled,
      pushed: pushed.pushed,
      applied: pushed.applied + pulled.applied,
      conflicts: pushed.conflicts + pulled.conflicts,
      rejected: pushed.rejected,
      pages: pulled.pages,
      bytesSent: this.transport.stats.bytesSent - sent0,
      bytesReceived: this.transport.stats.bytesReceived - received0,
      durationMs: elapsedMs(started),
      serverTime: pulled.serverTime,
      fullResync: pulled.fullResync,
      commands: commands(),
      acked,
    };
    const level = report.pulled + report.pushed >= 1000 ? 'info' : 'debug';
    this.#log[level]({ ...report }, 'sync cycle done');
    return report;
  }

  async #liveRound(options: { readonly waitSeconds: number; readonly signal?: AbortSignal }): Promise<LiveRoundReport> {
    const started = performance.now();
    if (!this.clock.known || this.peer.traits === undefined) await this.probe();
    const { common, commands } = this.#phase();
    const timeoutMs = liveTimeoutMs(options.waitSeconds, this.config.liveTimeoutMarginMs);
    const wait = { seconds: options.waitSeconds, timeoutMs, ...(options.signal ? { signal: options.signal } : {}) };
    const pulled = await this.#pull(common, { full: false, wait });
    const acked = await this.#ackIfDue(pulled, 0);
    return {
      end: liveEnd(pulled.live),
      waitedMs: pulled.live?.waited_ms ?? 0,
      pulled: pulled.pulled,
      pushed: 0,
      applied: pulled.applied,
      conflicts: pulled.conflicts,
      commands: commands(),
      serverTime: pulled.serverTime,
      fullResync: pulled.fullResync,
      acked,
      durationMs: elapsedMs(started),
      pending: this.store.outbox.count(),
    };
  }

  /**
   * The pull phase; a delta applied up to its watermark makes older push settlements moot. On `auto`, a server that
   * answers this protocol's request with a 5xx is asked the seed's plain shape before anything backs off: if that
   * works the profile switches (remembered) and the pull is done that way.
   */
  async #pull(common: PhaseDeps & { nowMs: () => number }, options: Pick<PullDeps, 'full' | 'wait'>): Promise<PullReport> {
    const settledAfter = (serverMicros: number): string[] => this.#settlements.after(serverMicros);
    const peer = pullPeerOf(this.peer);
    // A server profile that is not this protocol's (FunkyGibbon v1) is asked the seed only.
    const base = { ...common, store: this.store, clock: this.clock, pageLimit: this.config.pageLimit, settledAfter, seedOnly: this.config.seedOnly || peer !== undefined, ...(peer ? { peer } : {}) };
    let pulled: PullReport;
    try {
      pulled = await pull({ ...base, ...options });
    } catch (err) {
      // a 5xx for our request, or no token endpoint (404): the seed's plain shape may work
      const status = err instanceof SyncHttpError ? (err.status ?? 0) : 0;
      const otherShape = (status >= 500 || status === 404) && this.peer.setting === 'auto' && peer === undefined;
      if (!otherShape) throw err;
      this.#log.warn({ status, reason: err instanceof Error ? err.message : String(err) }, 'server failed our sync_request; trying the seed\'s plain request shape');
      await this.#probeSeedShape('fallback').catch(() => {
        throw err;
      });
      return this.#pull(common, options);
    }
    const watermark = parseTimestamp(pulled.serverTime);
    if (watermark !== undefined) {
      await this.convergence.verify(pulled, watermark, (extra) => pull({ ...base, full: false, ...extra }));
      this.#settlements.prune(watermark);
    }
    return pulled;
  }

  /** seed §Sync Flow step 5, when ackDue says so; `moved`: changes that count as progress for the rule. */
  async #ackIfDue(pulled: PullReport, moved: number): Promise<boolean> {
    const due = ackDue({ moved, fullResync: pulled.fullResync, lastAckAtMs: this.#lastAckAtMs, nowMs: this.#now(), maxAgeMs: this.config.ackMaxAgeMs });
    // The watermark an ack announces is in the file before the ack leaves (else a crash could
    // leave us behind what the server may purge tombstones up to); otherwise an idle pull's is only remembered.
    if (due && !pulled.watermarkSaved) await this.store.syncState.setMany({ last_sync: pulled.serverTime });
    else if (!pulled.watermarkSaved) this.store.syncState.remember({ last_sync: pulled.serverTime });
    if (!due) return false;
    this.#fault('before_ack');
    const ack: SyncAck = { type: 'sync_ack', client_id: this.config.clientId, sync_completed_at: timestampFor(this.peer.effective(), pulled.serverTime) };
    const { value } = await this.#authed({ method: 'POST', path: SYNC_ACK_PATH, body: ack, schema: PeerAckAnswerSchema });
    if (!ackAccepted(value)) throw new GatewayError('BAD_RESPONSE', `the server did not acknowledge the sync: ${JSON.stringify(value).slice(0, 200)}`);
    this.#lastAckAtMs = this.#now();
    return true;
  }

  readonly #settlements = new PushSettlements();
  readonly #settle = (decided: readonly PushedVersion[], serverMicros: number): void => this.#settlements.record(decided, serverMicros);
  /** Local epoch ms of the last sync_ack sent (in memory: a restarted gateway acks on its first cycle). */
  #lastAckAtMs: number | undefined;

  /**
   * docs/architecture.md §Time: when the server offset is first learnt (or the local clock steps), pending changes were
   * stamped with the old offset; they (and the local versions they carry) are shifted by the difference, so a Pi that
   * booted with a wrong clock neither writes a wrong time upstream nor loses every conflict. The writer runs it after
   * every write queued before the step and before every one queued after it.
   */
  rebase(deltaMs: number): void {
    if (Math.round(deltaMs * 1000) === 0) return;
    this.store.outbox.rebase(deltaMs * 1000).then(
      (shifted) => {
        if (shifted > 0) this.#log.info({ shifted, deltaMs: Math.round(deltaMs) }, 'pending changes re-stamped in server-corrected time');
      },
      (err: unknown) => this.#log.warn({ err }, 'could not re-stamp pending changes'),
    );
  }

  #emit(commands: DeviceCommand[]): void {
    try {
      this.#onCommands(commands);
    } catch (err) {
      this.#log.error({ err }, 'onDeviceCommands failed');
    }
  }

  /** GET /api/v1/health (peer-phases.ts `probeHealth`): the clock, the profile on `auto`, partial states. */
  async probe(): Promise<void> {
    const { partialState } = await probeHealth(this.#probeDeps());
    this.#partialPush = partialState;
  }

  #probeDeps(): ProbeDeps {
    return { transport: this.transport, clock: this.clock, peer: this.peer, clientId: this.config.clientId, nowMs: this.#now };
  }

  #probeSeedShape(by: 'sync_probe' | 'fallback'): Promise<void> {
    return probeSeedShape(this.#probeDeps(), by);
  }

  /** The push phase, shaped for the server's profile (what it cannot store stays pending). */
  #push(common: PhaseDeps & { nowMs: () => number }): ReturnType<typeof push> {
    const peer = pushPeerOf(this.peer);
    const partial = this.#partialPush === true && !this.config.seedOnly && peer === undefined;
    return push({ ...common, store: this.store, batchSize: this.config.pushBatchSize, settle: this.#settle, partial, ...(peer ? { peer } : {}) });
  }

  /**
   * A request with the bearer token; on 401 AUTH_EXPIRED (or a token the server no longer knows) renew once, retry
   * once. A server without a token endpoint (FunkyGibbon v1) gets the static `server.token`, or no Authorization.
   */
  async #authed<T>(spec: CallSpec<T>): Promise<CallResult<T>> {
    if (!this.peer.effective().tokenEndpoint) {
      const fixed = this.peer.token;
      return this.transport.call({ ...spec, ...(fixed === undefined ? {} : { bearer: fixed }) });
    }
    if (this.config.clientSecret === undefined) {
      throw new GatewayError('CONFIG_INVALID', 'the server issues tokens (profile inbetweenies): set server.clientSecret');
    }
    const token = await this.#tokens.accessToken();
    try {
      return await this.transport.call({ ...spec, bearer: token });
    } catch (err) {
      if (!(err instanceof SyncHttpError) || (err.code !== 'AUTH_EXPIRED' && err.code !== 'UNAUTHORIZED')) throw err;
      this.#log.info({ code: err.code, path: spec.path }, 'access token refused; renewing and retrying once');
      if (err.code === 'UNAUTHORIZED') this.#tokens.forget();
      const renewed = await this.#tokens.renew();
      return this.transport.call({ ...spec, bearer: renewed });
    }
  }

  /** Drains requests in flight and closes connections. */
  async close(): Promise<void> {
    await this.transport.close();
  }

  /** Aborts requests in flight (the outbox keeps every change: nothing is cleared without a result). */
  async destroy(): Promise<void> {
    await this.transport.destroy();
  }
}

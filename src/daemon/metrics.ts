/**
 * Prometheus metrics with prom-client, in a Registry of this daemon's own (no global default registry,
 * so two daemons in one process — tests — never mix). Counters mirror cumulative component counters at scrape time;
 * the sync latency histogram is observed as cycles end. Names are listed in docs/operations.md §Metrics.
 */
import type { ConvergenceStatus } from '../sync/convergence.js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { IngestMetrics } from '../ingest/index.js';
import type { StoreStats, SyncStatus } from '../store/index.js';
import type { SchedulerStatus } from '../sync/index.js';
import type { HealthReport } from './health.js';
import { initialiseLabels, METRIC_PREFIX, registerExtraMetrics, type ExtraMetricsSources } from './metrics-extra.js';
import type { InstrumentedRunner } from './sync-stats.js';

export { METRIC_PREFIX };

export interface MetricsSources {
  readonly ingest: () => IngestMetrics;
  readonly store: () => SyncStatus;
  /** Unreadable rows met and failed sync-state writes (counted, never repaired silently). */
  readonly storeStats?: () => StoreStats;
  readonly scheduler: () => SchedulerStatus | null;
  readonly runner: InstrumentedRunner | undefined;
  readonly transport: () => { bytesSent: number; bytesReceived: number } | undefined;
  /** Convergence digest checks and repairs (optional: tools that run no sync client). */
  readonly convergence?: () => ConvergenceStatus | null;
  readonly health: () => HealthReport;
  /** Build info, process metrics, devices and messages per adapter (metrics-extra.ts). */
  readonly extra?: ExtraMetricsSources;
}

interface Snapshot {
  readonly ingest: IngestMetrics;
  readonly store: SyncStatus;
  readonly scheduler: SchedulerStatus | null;
  readonly health: HealthReport;
}

/** Feeds a prom-client Counter from a cumulative value read at scrape time (only ever increments by the delta). */
class Mirror {
  /** Last value seen, per counter, per label set. */
  readonly #last = new WeakMap<Counter<string>, Map<string, number>>();
  set(counter: Counter<string>, value: number, labels: Record<string, string> = {}): void {
    let seen = this.#last.get(counter);
    if (!seen) this.#last.set(counter, (seen = new Map()));
    const key = JSON.stringify(labels);
    const delta = value - (seen.get(key) ?? 0);
    if (delta > 0) counter.inc(labels, delta);
    if (!seen.has(key)) counter.inc(labels, 0);
    seen.set(key, value);
  }
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  #refresh: () => void = () => undefined;
  #snap: Snapshot;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    this.#snap = { ingest: sources.ingest(), store: sources.store(), scheduler: sources.scheduler(), health: sources.health() };
    this.registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
    this.#define();
    if (sources.extra) registerExtraMetrics(this.registry, sources.extra);
    const latency = this.registry.getSingleMetric(`${METRIC_PREFIX}sync_cycle_duration_seconds`);
    if (latency instanceof Histogram) for (const result of ['ok', 'error']) latency.zero({ result });
  }

  contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text. Sources are read once per scrape (one store query set), then counters catch up. */
  metrics(): Promise<string> {
    const s = this.#sources;
    this.#snap = { ingest: s.ingest(), store: s.store(), scheduler: s.scheduler(), health: s.health() };
    this.#refresh();
    return this.registry.metrics();
  }

  #counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
    const counter = new Counter({ name: METRIC_PREFIX + name, help, labelNames, registers: [this.registry] });
    initialiseLabels(counter, name);
    return counter;
  }

  #gauge(name: string, help: string, read: (g: Gauge<string>) => void, labelNames: string[] = []): void {
    new Gauge({
      name: METRIC_PREFIX + name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        read(this);
      },
    });
  }

  #define(): void {
    const s = this.#sources;
    const mirror = new Mirror();
    const messagesIn = this.#counter('mqtt_messages_in_total', 'PUBLISH packets received from MQTT clients');
    const ingested = this.#counter('messages_ingested_total', 'Messages on owned topics parsed into updates');
    const written = this.#counter('states_written_total', 'Entities written to the store (with their outbox rows)');
    const duplicates = this.#counter('duplicates_skipped_total', 'Updates that changed nothing and wrote nothing');
    const dropped = this.#counter('inputs_dropped_total', 'Messages refused, by reason', ['reason']);
    const commits = this.#counter('group_commits_total', 'Group commits (one transaction + fsync each)');
    const commitFailures = this.#counter('group_commit_failures_total', 'Group commits that failed (nothing acknowledged)');
    const cycles = this.#counter('sync_cycles_total', 'Sync cycles run, successful or not');
    const failures = this.#counter('sync_failures_total', 'Sync cycles that failed, by error code', ['code']);
    const conflicts = this.#counter('sync_conflicts_total', 'Conflicts reported by sync cycles (seed §Conflict Resolution)');
    const pulled = this.#counter('sync_changes_pulled_total', 'Changes pulled from the server');
    const pushed = this.#counter('sync_changes_pushed_total', 'Changes pushed to the server');
    const reconciles = this.#counter('sync_full_reconciles_total', 'Full reconciles requested (job or CLI)');
    const sent = this.#counter('sync_bytes_sent_total', 'Bytes sent to the sync server (headers estimated + body as sent)');
    const received = this.#counter('sync_bytes_received_total', 'Bytes received from the sync server');
    const corrupt = this.#counter('store_corrupt_rows_total', 'Rows the store could not read back, by table (logged, left as they are)', ['table']);
    const stateFailures = this.#counter('store_state_write_failures_total', 'Sync-state writes that failed (the value stays in memory)');
    const latency = new Histogram({
      name: `${METRIC_PREFIX}sync_cycle_duration_seconds`,
      help: 'Duration of sync cycles (all five phases), successful or not',
      labelNames: ['result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [this.registry],
    });
    const wakes = this.#counter('sync_live_wakes_total', 'Live waits answered because the home changed (docs/protocol.md §Live waits)');
    const rounds = this.#counter('sync_live_rounds_total', 'Live waits opened');
    const reconnects = this.#counter('sync_live_reconnects_total', 'Live waits re-opened after one was lost (server shutdown, failure)');
    const digestChecks = this.#counter('sync_digest_checks_total', 'Convergence digests compared with the store (docs/protocol.md §Convergence digest)');
    const digestMismatches = this.#counter('sync_digest_mismatches_total', 'Convergence digest mismatches detected (each repaired by pulling the differing buckets)');
    const digestRepaired = this.#counter('sync_digest_repaired_entities_total', 'Entities re-sent or removed by convergence repairs');
    const pushes = this.#counter('sync_pushes_total', 'Pushes of local changes alone (critical ones at once, ordinary ones within the uplink window)');
    s.runner?.onCycle((o) => {
      // A live wait's duration is mostly its hold: only full cycles go into the latency histogram.
      if (o.kind === 'cycle') latency.observe({ result: o.ok ? 'ok' : 'error' }, o.seconds);
      pulled.inc(o.pulled);
      pushed.inc(o.pushed);
      if (!o.ok) failures.inc({ code: o.code ?? 'INTERNAL' });
    });
    pulled.inc(0);
    pushed.inc(0);
    this.#refresh = () => {
      const m = this.#snap.ingest;
      mirror.set(messagesIn, m.messagesIn);
      mirror.set(ingested, m.messagesIngested);
      mirror.set(written, m.statesWritten);
      mirror.set(duplicates, m.duplicates);
      for (const [reason, n] of Object.entries(m.dropped)) mirror.set(dropped, n, { reason });
      mirror.set(commits, m.batchesCommitted);
      mirror.set(commitFailures, m.commitFailures);
      const r = s.runner;
      mirror.set(cycles, r?.cycles ?? 0);
      mirror.set(conflicts, r?.conflicts ?? 0);
      mirror.set(reconciles, r?.fullReconciles ?? 0);
      const live = this.#snap.scheduler?.live;
      mirror.set(wakes, live?.wakes ?? 0);
      mirror.set(rounds, live?.rounds ?? 0);
      mirror.set(reconnects, live?.reconnects ?? 0);
      mirror.set(pushes, live?.pushes ?? 0);
      const c = s.convergence?.();
      mirror.set(digestChecks, c?.checks ?? 0);
      mirror.set(digestMismatches, c?.mismatches ?? 0);
      mirror.set(digestRepaired, c?.repairedEntities ?? 0);
      const t = s.transport();
      mirror.set(sent, t?.bytesSent ?? 0);
      mirror.set(received, t?.bytesReceived ?? 0);
      const st = s.storeStats?.();
      for (const [table, n] of Object.entries(st?.corruptRows ?? {})) mirror.set(corrupt, n, { table });
      mirror.set(stateFailures, st?.stateWriteFailures ?? 0);
    };
    this.#defineGauges();
  }

  #defineGauges(): void {
    const snap = (): Snapshot => this.#snap;
    this.#gauge('broker_clients', 'Connected MQTT clients', (g) => g.set(snap().ingest.brokerClients));
    this.#gauge('pending_changes', 'Changes in the outbox waiting to be pushed (one per entity)', (g) => g.set(snap().store.pending));
    this.#gauge('oldest_pending_age_seconds', 'Age of the oldest pending change (0 when none)', (g) => g.set((snap().store.oldestPendingAgeMs ?? 0) / 1000));
    this.#gauge('conflicts_logged', 'Rows in the conflict log', (g) => g.set(snap().store.conflicts));
    this.#gauge('last_sync_success_timestamp_seconds', 'When the last successful sync cycle ended (0 never)', (g) => {
      const at = snap().scheduler?.lastSuccessAt ?? snap().store.lastSyncAt;
      g.set(at === null ? 0 : at / 1000);
    });
    this.#gauge('sync_mode', 'Sync mode: 1 for the current one (online, backoff, offline, stopped, unconfigured)', (g) => {
      const mode = snap().scheduler?.mode ?? 'unconfigured';
      for (const m of ['online', 'backoff', 'offline', 'stopped', 'unconfigured']) g.set({ mode: m }, m === mode ? 1 : 0);
    }, ['mode']);
    this.#gauge('sync_live', '1 while a live wait is held (server changes arrive at once), 0 while polling', (g) => g.set(snap().scheduler?.via === 'live' ? 1 : 0));
    this.#gauge('sync_live_held_seconds', 'How long the live wait held now has been held (0 when none is)', (g) => g.set((snap().scheduler?.live.heldForMs ?? 0) / 1000));
    this.#gauge('healthy', '1 when /healthz answers 200', (g) => g.set(snap().health.healthy ? 1 : 0));
    this.#gauge('event_loop_lag_seconds', 'Event loop lag measured by the last health check', (g) => g.set(snap().health.eventLoopLagMs / 1000));
    this.#gauge('resident_memory_bytes', 'Resident set size of the daemon process', (g) => g.set(process.memoryUsage.rss()));
  }
}

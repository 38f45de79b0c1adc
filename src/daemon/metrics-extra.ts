/**
 * The metrics a Grafana user expects besides the pipeline's own (metrics.ts), on the same per-daemon registry:
 * prom-client's default process_* and nodejs_* metrics, `build_info{version,node}`, devices and messages per
 * ingest adapter, and the label values every labelled counter starts with (at 0), so each declared counter has a
 * sample from the first scrape — a `rate()` or an alert never waits for the first failure to exist.
 */
import { collectDefaultMetrics, Counter, Gauge, type Registry } from 'prom-client';
import type { RejectReason } from '../ingest/adapter.js';

export const METRIC_PREFIX = 'inbetweenies_gateway_';

/** Label values each labelled counter is created with (0), by metric name without the prefix. */
export const INITIAL_LABELS: Readonly<Record<string, ReadonlyArray<Record<string, string>>>> = {
  inputs_dropped_total: (
    [
      'payload_too_large', 'binary_payload', 'invalid_json', 'not_an_object', 'invalid_schema', 'invalid_device_id',
      'invalid_availability', 'invalid_topic', 'unsupported_template', 'commit_failed',
    ] satisfies Array<RejectReason | 'commit_failed'>
  ).map((reason) => ({ reason })),
  // The codes a sync cycle fails with (errors.ts); others appear when they happen.
  sync_failures_total: ['TRANSPORT', 'TIMEOUT', 'BAD_RESPONSE', 'BAD_SIGNATURE', 'UNAUTHORIZED', 'AUTH_EXPIRED', 'RATE_LIMITED', 'INVALID_SYNC_STATE', 'SERVER_BUSY', 'INTERNAL'].map((code) => ({ code })),
  store_corrupt_rows_total: ['entities', 'outbox', 'sync_state', 'conflicts'].map((table) => ({ table })),
};

/** Sets a labelled counter's starting label values to 0 (INITIAL_LABELS). */
export function initialiseLabels(counter: Counter<string>, name: string): void {
  for (const labels of INITIAL_LABELS[name] ?? []) counter.inc(labels, 0);
}

export interface ExtraMetricsSources {
  readonly version: string;
  /** Devices in the store by the adapter that speaks for them (`other`: none of the enabled ones). */
  readonly devicesByAdapter: () => Record<string, number>;
  /** Cumulative messages each adapter took (IngestMetrics.messagesByAdapter). */
  readonly messagesByAdapter: () => Record<string, number>;
}

/** Registers the default process metrics, build info and the per-adapter metrics on `registry`. */
export function registerExtraMetrics(registry: Registry, sources: ExtraMetricsSources): void {
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: `${METRIC_PREFIX}build_info`,
    help: 'Always 1; the labels say which version runs on which Node.js',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: sources.version, node: process.version }, 1);
  new Gauge({
    name: `${METRIC_PREFIX}devices`,
    help: 'Devices in the store, by the ingest adapter that speaks for them',
    labelNames: ['adapter'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [adapter, n] of Object.entries(sources.devicesByAdapter())) this.set({ adapter }, n);
    },
  });
  // The adapters' cumulative counts are caught up when the counter is read (each scrape).
  const seen = new Map<string, number>();
  const messages: Counter<string> = new Counter({
    name: `${METRIC_PREFIX}messages_total`,
    help: 'MQTT messages each ingest adapter took (parsed into updates or refused)',
    labelNames: ['adapter'],
    registers: [registry],
    collect() {
      for (const [adapter, n] of Object.entries(sources.messagesByAdapter())) {
        this.inc({ adapter }, Math.max(0, n - (seen.get(adapter) ?? 0)));
        seen.set(adapter, Math.max(n, seen.get(adapter) ?? 0));
      }
    },
  });
  for (const adapter of Object.keys(sources.messagesByAdapter())) messages.inc({ adapter }, 0);
}

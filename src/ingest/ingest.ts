/**
 * The durable ingest pipeline (docs/architecture.md §Durability): every PUBLISH passes through the
 * broker's publish interceptor (aedes `authorizePublish`, which runs before the PUBACK is written). A message on an
 * adapter's topic is parsed into updates and handed to the group commit; a QoS ≥ 1 message is called back — and so
 * acknowledged — only after its batch is committed durably by the store's writer (fsynced: store/writer.ts). QoS 0
 * messages join the same batches without waiting. Messages of one socket read are handled concurrently by aedes
 * (lib/client.js `enqueue`), so a client's pipelined messages share one commit.
 */
import type { MessageBus, PublishInterceptor } from '../broker/broker.js';
import { clip } from '../broker/log-fields.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GatewayStore } from '../store/index.js';
import type { DeviceCommand, StampClock } from '../store/types.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import type { IngestAdapter, OutgoingMessage } from './adapter.js';
import { DEFAULT_CRITICAL_CONFIG, type CriticalConfig } from './critical.js';
import { DEFAULT_DEVICE_LIMITS, DeviceAdmission, type DeviceLimits } from './device-limits.js';
import { createDownlink, type DownlinkResult } from './downlink.js';
import { GroupCommit } from './group-commit.js';
import { APPLY_MESSAGES, type LocalUpdate } from './local-writes.js';
import { countDropped, newIngestMetrics, type IngestMetrics } from './metrics.js';
import { TopicRouter } from './router.js';

export interface LocalChangeEvent {
  /** Whether any committed change is critical (the scheduler syncs at once). */
  readonly critical: boolean;
  readonly written: number;
  /** The devices the committed batch was about (some may have written nothing: a duplicate). */
  readonly deviceIds: readonly string[];
}

export interface IngestOptions {
  /** The embedded broker, or the external broker's connection (external mode: src/ingest/external-source.ts). */
  readonly broker: MessageBus;
  readonly store: Pick<GatewayStore, 'durable' | 'relaxed' | 'entities'>;
  readonly logger: Logger;
  readonly clock: StampClock;
  readonly adapters: readonly IngestAdapter[];
  /** New devices per MQTT identity per minute, and devices in the store at most (device-limits.ts). */
  readonly deviceLimits?: DeviceLimits;
  /** Local wall clock (epoch ms); default Date.now. */
  readonly now?: () => number;
  /** Group-commit window; default 4 ms. */
  readonly groupCommitWindowMs?: number;
  /**
   * How long QoS 0 messages (nothing to acknowledge) may wait for company before a commit without fsync; default
   * groupCommitWindowMs. A QoS 1 message joining the batch shortens the wait and makes the commit durable.
   */
  readonly qos0WindowMs?: number;
  /** Messages per batch at most; default 2000. */
  readonly maxBatch?: number;
  readonly critical?: CriticalConfig;
  /** Called after each commit that wrote something. */
  readonly onLocalChange?: (event: LocalChangeEvent) => void;
  /** Interval of the rate-limited warnings (bad payloads, commit failures); default 10 s. */
  readonly errorLogIntervalMs?: number;
}

export interface Ingest {
  start(): void;
  /** Detaches from the broker, then commits what is queued (resolves when it has committed or failed). */
  stop(): Promise<void>;
  /** Commits what is queued now; resolves when it has committed (tests, benchmarks). */
  flush(): Promise<void>;
  publishCommands(commands: readonly DeviceCommand[]): Promise<DownlinkResult>;
  /** Counters; brokerClients is refreshed on each call. */
  metrics(): IngestMetrics;
  readonly router: TopicRouter;
}

export function createIngest(options: IngestOptions): Ingest {
  const { broker, store, clock } = options;
  const log = options.logger.child({ module: 'ingest' });
  const now = options.now ?? Date.now;
  const critical = options.critical ?? DEFAULT_CRITICAL_CONFIG;
  const errorLogIntervalMs = options.errorLogIntervalMs ?? 10_000;
  const rejected = new RateLimitedLog({ logger: log, intervalMs: errorLogIntervalMs, level: 'warn' });
  const failures = new RateLimitedLog({ logger: log, intervalMs: errorLogIntervalMs, level: 'error' });
  const metrics = newIngestMetrics();
  const router = new TopicRouter(options.adapters);
  for (const adapter of router.adapters()) metrics.messagesByAdapter[adapter.name] = 0;
  const downlink = createDownlink({ publish: (message) => broker.publish(message), router, logger: options.logger, metrics });

  const admission = new DeviceAdmission({ limits: options.deviceLimits ?? DEFAULT_DEVICE_LIMITS, known: (id) => store.entities.deviceKnown(id), now });
  const writer = createWriter({ store, clock, now, critical, metrics, failures, rejected, admission, notify: listener(options.onLocalChange, log) }, options);
  const urgentAttributes = new Set(critical.attributes.map((a) => a.toLowerCase()));
  const isUrgent = (updates: readonly LocalUpdate[]): boolean =>
    updates.some((u) => u.kind === 'state' && Object.keys(u.attributes).some((name) => urgentAttributes.has(name.toLowerCase())));
  const intercept = createInterceptor(router, writer, metrics, rejected, {
    isUrgent,
    accountOf: (client) => broker.accountOf(client),
    admission,
    // Answers an adapter asks for (a Shelly's GetDeviceInfo request); a failure is logged, never fatal.
    publish: (m) => void broker.publish(m).catch((err: unknown) => log.warn({ err, topic: clip(m.topic) }, 'adapter publish failed')),
    heard: (deviceIds, adapter, topic) => {
      // Device ids come from topics a client chose: every one clipped (broker/log-fields.ts).
      const more = deviceIds.length > 3 ? ` and ${deviceIds.length - 3} more` : '';
      log.info({ adapter, topic: clip(topic), devices: deviceIds.slice(0, 20).map((id) => clip(id)), count: deviceIds.length }, `device heard: ${deviceIds.slice(0, 3).map((id) => clip(id)).join(', ')}${more}`);
    },
  });

  let detach: (() => void) | undefined;
  return {
    router,
    start() {
      if (detach) return;
      detach = broker.addPublishInterceptor(intercept);
      log.info({ adapters: router.adapters().map((a) => a.name) }, 'ingest started');
    },
    async stop() {
      detach?.();
      detach = undefined;
      await writer.close();
      rejected.flush();
      failures.flush();
    },
    flush: () => {
      writer.flush();
      return writer.drain();
    },
    publishCommands: (commands) => downlink.publishCommands(commands),
    metrics() {
      metrics.brokerClients = broker.clientCount();
      return metrics;
    },
  };
}

interface WriterDeps {
  readonly store: Pick<GatewayStore, 'durable' | 'relaxed'>;
  readonly clock: StampClock;
  readonly now: () => number;
  readonly critical: CriticalConfig;
  readonly metrics: IngestMetrics;
  readonly failures: RateLimitedLog;
  readonly rejected: RateLimitedLog;
  readonly admission: DeviceAdmission;
  readonly notify: (event: LocalChangeEvent) => void;
}

/** The group commit: one transaction (and, with a QoS 1 message, one fsync) per batch; counters updated after each. */
function createWriter(deps: WriterDeps, options: IngestOptions): GroupCommit<readonly LocalUpdate[]> {
  const { store, clock, now, critical, metrics } = deps;
  return new GroupCommit<readonly LocalUpdate[]>({
    windowMs: options.groupCommitWindowMs ?? 4,
    relaxedWindowMs: options.qos0WindowMs ?? options.groupCommitWindowMs ?? 4,
    maxBatch: options.maxBatch ?? 2000,
    // The program isolates a poison message itself (in the same transaction, in order), so a second batch can wait
    // in the writer's queue while one commits: the writer goes from one commit to the next without waiting for us.
    maxInflight: 2,
    // A batch with a QoS 1 message commits durably (its PUBACK waits for the fsync); a QoS 0-only batch needs none.
    commit: async (items, durable) => {
      const started = performance.now();
      const args = { messages: items, nowMicros: clock.nowMicros(), nowMs: now(), critical, maxDevices: deps.admission.limits.total };
      const { counts, failed } = durable ? await store.durable(APPLY_MESSAGES, args) : await store.relaxed(APPLY_MESSAGES, args);
      metrics.commitMillis += performance.now() - started;
      metrics.batchesCommitted += 1;
      metrics.largestBatch = Math.max(metrics.largestBatch, items.length);
      metrics.statesWritten += counts.written;
      metrics.duplicates += counts.duplicates;
      metrics.criticalChanges += counts.critical;
      if (counts.refused > 0) refusedByTotal(deps, counts.refused, counts.refusedDevices);
      if (counts.written > 0) deps.notify({ critical: counts.critical > 0, written: counts.written, deviceIds: [...new Set(items.flat().map((u) => u.deviceId))] });
      if (failed.length === 0) return undefined;
      const results: Array<Error | null> = items.map(() => null);
      for (const f of failed) results[f.index] = new GatewayError('NOT_ACKNOWLEDGED', `message refused by the store: ${f.message}`);
      return results;
    },
    onFailure: (err, items) => {
      metrics.commitFailures += 1;
      countDropped(metrics, 'commit_failed', items);
      deps.failures.record('commit_failed', 'store commit failed; QoS 1 messages not acknowledged', { err, messages: items });
    },
  });
}

/** The store's writer refused new devices: the store holds ingest.deviceLimits.total devices. */
function refusedByTotal(deps: WriterDeps, refused: number, deviceIds: readonly string[]): void {
  countDropped(deps.metrics, 'device_limit', refused);
  deps.admission.forget(deviceIds);
  deps.rejected.record('device_limit', 'new device refused: the store holds ingest.deviceLimits.total devices (acknowledged, not stored)', {
    maxDevices: deps.admission.limits.total,
    refused,
    deviceIds: deviceIds.slice(0, 5).map((id) => clip(id)),
  });
}

/** Calls the scheduler's listener after the commit returned; a throwing listener must not undo a commit. */
function listener(onLocalChange: IngestOptions['onLocalChange'], log: Logger): (event: LocalChangeEvent) => void {
  return (event) => {
    if (!onLocalChange) return;
    queueMicrotask(() => {
      try {
        onLocalChange(event);
      } catch (err) {
        log.error({ err }, 'onLocalChange listener threw');
      }
    });
  };
}

interface InterceptorHooks {
  /**
   * A message carrying a critical attribute (ingest.critical.attributes: smoke, water_leak, lock_state, …) is
   * committed at once instead of waiting for its window, so a long PUBACK window (SD-card wear) never delays an alarm.
   */
  readonly isUrgent: (updates: readonly LocalUpdate[]) => boolean;
  readonly publish: (message: OutgoingMessage) => void;
  /** Devices heard for the first time since the start (logged once each). */
  readonly heard: (deviceIds: readonly string[], adapter: string, topic: string) => void;
  readonly accountOf: MessageBus['accountOf'];
  readonly admission: DeviceAdmission;
}

function createInterceptor(
  router: TopicRouter,
  writer: GroupCommit<readonly LocalUpdate[]>,
  metrics: IngestMetrics,
  rejected: RateLimitedLog,
  hooks: InterceptorHooks,
): PublishInterceptor {
  return (client, packet, done) => {
    metrics.messagesIn += 1;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const routed = router.route(packet.topic, payload);
    if (routed === undefined) {
      done(null); // not ours: other clients talk on the broker too
      return;
    }
    const result = routed.result;
    const name = routed.adapter.name;
    metrics.messagesByAdapter[name] = (metrics.messagesByAdapter[name] ?? 0) + 1;
    if (!result.ok) {
      // Acknowledged and delivered to subscribers, but never stored: counted and logged, stored state untouched.
      countDropped(metrics, result.reason);
      rejected.record(result.reason, 'payload refused', {
        adapter: routed.adapter.name,
        topic: clip(packet.topic),
        clientId: clip(client?.id),
        detail: clip(result.detail, 300),
      });
      done(null);
      return;
    }
    const account = hooks.accountOf(client);
    const { admitted, refused } = hooks.admission.filter(account, result.updates);
    if (refused.length > 0) {
      // Acknowledged as MQTT says, not stored: a client creating devices faster than its identity may.
      countDropped(metrics, 'device_rate_limited');
      rejected.record('device_rate_limited', 'new device refused: this identity creates devices too fast (ingest.deviceLimits.newPerMinute; acknowledged, not stored)', {
        account: clip(account),
        clientId: clip(client?.id),
        deviceId: clip(refused[0]),
        refused: refused.length,
        perMinute: hooks.admission.limits.newPerMinute,
      });
      if (admitted.length === 0) {
        done(null);
        return;
      }
    }
    metrics.messagesIngested += 1;
    const heard = refused.length === 0 ? routed.firstHeard : routed.firstHeard.filter((id) => !refused.includes(id));
    if (heard.length > 0) hooks.heard(heard, routed.adapter.name, packet.topic);
    for (const message of result.publish ?? []) hooks.publish(message);
    const urgent = hooks.isUrgent(result.updates);
    if (packet.qos === 0) {
      writer.submit(admitted, undefined, urgent);
      done(null);
      return;
    }
    writer.submit(admitted, (err) => done(err ? new GatewayError('NOT_ACKNOWLEDGED', `not acknowledged: ${err.message}`, { cause: err }) : null), urgent);
  };
}

/** Ingest counters in a plain object; the daemon exposes them (status, Prometheus) as it likes. */
export interface IngestMetrics {
  /** Every PUBLISH seen from a client, owned or not. */
  messagesIn: number;
  /** Messages on owned topics that parsed into updates. */
  messagesIngested: number;
  /** Messages each adapter took (parsed into updates or refused), by adapter name; every adapter from the start. */
  messagesByAdapter: Record<string, number>;
  /** Entities written (with their outbox rows). */
  statesWritten: number;
  /** Updates that changed nothing (identical state / meta). */
  duplicates: number;
  /** Entities written whose change is critical. */
  criticalChanges: number;
  /** Messages on owned topics refused, by reason (payload rejections and commit failures). */
  dropped: Record<string, number>;
  batchesCommitted: number;
  commitFailures: number;
  largestBatch: number;
  /** Time from handing a batch to the store's writer to its answer (transaction + fsync), ms. */
  commitMillis: number;
  commandsPublished: number;
  commandsFailed: number;
  /** Connected MQTT clients, read at the time of the snapshot. */
  brokerClients: number;
}

export function newIngestMetrics(): IngestMetrics {
  return {
    messagesIn: 0,
    messagesIngested: 0,
    messagesByAdapter: {},
    statesWritten: 0,
    duplicates: 0,
    criticalChanges: 0,
    dropped: {},
    batchesCommitted: 0,
    commitFailures: 0,
    largestBatch: 0,
    commitMillis: 0,
    commandsPublished: 0,
    commandsFailed: 0,
    brokerClients: 0,
  };
}

export function countDropped(metrics: IngestMetrics, reason: string, n = 1): void {
  metrics.dropped[reason] = (metrics.dropped[reason] ?? 0) + n;
}

/**
 * The status page's live stream: GET /events as Server-Sent Events (HTML Living Standard §9.2). Each stream gets a
 * `snapshot` event (status, devices, conflicts) at once, then, as things change:
 *
 * - `devices` — `{"full":false,"devices":[…],"removed":[…]}` for the devices ingest committed or a server change
 *   reached, or `{"full":true,…}` after a sync pulled changes (renames, rooms, deletions);
 * - `status` — the page status when what it shows changed (sync mode, last sync, pending, clients, health);
 * - `conflicts` — the recent conflicts when their number changed;
 *
 * coalesced over `flushMs` (250 ms), and a `: ping` comment every `heartbeatMs` (15 s) so proxies keep the stream.
 * Bounded: at most `maxClients` streams (then 503 SERVER_BUSY), and a stream whose client stops reading is dropped
 * once `maxBufferedBytes` wait for it. Nothing is computed while no stream is open.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeviceWithRoom } from '../store/device-queries.js';
import type { ConflictEntry } from '../store/index.js';
import type { DaemonEvent, EventHub } from './events.js';
import { statusFingerprint, type PageSnapshot, type PageStatus } from './page-data.js';

export interface StatusFeedOptions {
  readonly hub: EventHub;
  readonly logger: Logger;
  readonly maxClients: number;
  readonly status: () => PageStatus;
  readonly devices: () => DeviceWithRoom[];
  readonly devicesOf: (ids: readonly string[]) => { devices: DeviceWithRoom[]; missing: string[] };
  readonly conflicts: () => ConflictEntry[];
  readonly heartbeatMs?: number;
  readonly flushMs?: number;
  /** While a stream is open, the status is looked at this often (mode changes no event announces). */
  readonly watchMs?: number;
  readonly maxBufferedBytes?: number;
}

/** More changed devices than this in one flush: send the whole list instead. */
const MAX_PARTIAL = 200;

export class StatusFeed {
  readonly #o: StatusFeedOptions;
  readonly #log: Logger;
  readonly #clients = new Set<ServerResponse>();
  readonly #dirty = new Set<string>();
  #allDevices = false;
  #statusDirty = false;
  #lastStatus = '';
  #lastConflicts = -1;
  #flushTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #watch: NodeJS.Timeout | undefined;
  #off: (() => void) | undefined;

  constructor(options: StatusFeedOptions) {
    if (!Number.isInteger(options.maxClients) || options.maxClients < 1) throw new TypeError(`status feed: expected maxClients >= 1, got ${String(options.maxClients)}`);
    this.#o = options;
    this.#log = options.logger.child({ module: 'status-page' });
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** The whole picture (the snapshot event, and what a reconnecting page gets). */
  snapshot(): PageSnapshot {
    return { status: this.#o.status(), devices: this.#o.devices(), conflicts: this.#o.conflicts() };
  }

  /** Opens a stream on `res`; throws SERVER_BUSY (503, Retry-After) when `maxClients` are open. */
  open(req: IncomingMessage, res: ServerResponse): void {
    if (this.#clients.size >= this.#o.maxClients) {
      throw new ProtocolError('SERVER_BUSY', `${this.#o.maxClients} status pages are open already (http.maxEventClients)`, { retryAfterSeconds: 10 });
    }
    const snap = this.snapshot();
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', 'X-Content-Type-Options': 'nosniff' });
    res.write(`retry: 3000\n\n${frame('snapshot', snap)}`);
    res.socket?.setNoDelay(true);
    this.#clients.add(res);
    if (this.#clients.size === 1) this.#startWatching(snap);
    const drop = (): void => this.#drop(res);
    req.once('close', drop);
    res.once('close', drop);
    res.on('error', drop);
  }

  /** Ends every stream and stops the timers (the listener is closing). */
  close(): void {
    for (const res of [...this.#clients]) {
      res.end();
      this.#drop(res);
    }
    this.#stopWatching();
  }

  #startWatching(snap: PageSnapshot): void {
    this.#lastStatus = statusFingerprint(snap.status);
    this.#lastConflicts = snap.status.conflicts;
    this.#off = this.#o.hub.on((event) => this.#heard(event));
    this.#heartbeat = setInterval(() => this.#broadcast(': ping\n\n'), this.#o.heartbeatMs ?? 15_000);
    this.#watch = setInterval(() => this.#mark(() => (this.#statusDirty = true)), this.#o.watchMs ?? 1000);
    this.#heartbeat.unref();
    this.#watch.unref();
  }

  #stopWatching(): void {
    this.#off?.();
    this.#off = undefined;
    clearInterval(this.#heartbeat);
    clearInterval(this.#watch);
    clearTimeout(this.#flushTimer);
    this.#heartbeat = this.#watch = this.#flushTimer = undefined;
    this.#dirty.clear();
    this.#allDevices = this.#statusDirty = false;
  }

  #drop(res: ServerResponse): void {
    if (!this.#clients.delete(res)) return;
    if (this.#clients.size === 0) this.#stopWatching();
  }

  #heard(event: DaemonEvent): void {
    this.#mark(() => {
      this.#statusDirty = true;
      if (event.kind === 'devices') for (const id of event.ids) this.#dirty.add(id);
      else if (event.pulled > 0) this.#allDevices = true;
      if (this.#dirty.size > MAX_PARTIAL) this.#allDevices = true;
    });
  }

  #mark(change: () => void): void {
    change();
    this.#flushTimer ??= setTimeout(() => this.#flush(), this.#o.flushMs ?? 250);
  }

  #flush(): void {
    this.#flushTimer = undefined;
    if (this.#clients.size === 0) return;
    try {
      let out = '';
      if (this.#allDevices) out += frame('devices', { full: true, devices: this.#o.devices(), removed: [] });
      else if (this.#dirty.size > 0) {
        const { devices, missing } = this.#o.devicesOf([...this.#dirty]);
        out += frame('devices', { full: false, devices, removed: missing });
      }
      this.#dirty.clear();
      this.#allDevices = false;
      if (this.#statusDirty) out += this.#statusFrames();
      this.#statusDirty = false;
      if (out !== '') this.#broadcast(out);
    } catch (err) {
      this.#log.error({ err }, 'status page update failed');
    }
  }

  #statusFrames(): string {
    const status = this.#o.status();
    let out = '';
    const print = statusFingerprint(status);
    if (print !== this.#lastStatus) {
      this.#lastStatus = print;
      out += frame('status', status);
    }
    if (status.conflicts !== this.#lastConflicts) {
      this.#lastConflicts = status.conflicts;
      out += frame('conflicts', this.#o.conflicts());
    }
    return out;
  }

  #broadcast(text: string): void {
    const limit = this.#o.maxBufferedBytes ?? 1 << 20;
    for (const res of [...this.#clients]) {
      if (res.writableLength > limit) {
        this.#log.warn({ buffered: res.writableLength }, 'status page stream dropped: its client does not read');
        res.destroy();
        this.#drop(res);
        continue;
      }
      res.write(text);
    }
  }
}

/** One SSE event; JSON never holds a raw newline, so `data:` is one line. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

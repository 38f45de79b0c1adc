/**
 * The daemon's in-process event hub: what changed, said once by the part that knows, heard by whoever watches (the
 * status page's live stream, the MQTT bridge). Owned by the daemon (one per GatewayDaemon, never module state);
 * emitting is synchronous and cheap, and a listener that throws is logged, never the emitter's problem.
 */
import type { Logger } from '../log.js';

export type DaemonEvent =
  /** Ingest committed these devices' states, or the sync sent them a server-side change. */
  | { readonly kind: 'devices'; readonly ids: readonly string[] }
  /** A sync cycle (or live round) ended; `pulled` changes came from the server (devices may have changed anyhow). */
  | { readonly kind: 'sync'; readonly ok: boolean; readonly pulled: number };

export type DaemonEventListener = (event: DaemonEvent) => void;

export class EventHub {
  readonly #listeners = new Set<DaemonEventListener>();
  readonly #log: Logger;

  constructor(logger: Logger) {
    this.#log = logger.child({ module: 'events' });
  }

  /** Adds a listener; returns its removal. */
  on(listener: DaemonEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: DaemonEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#log.error({ err, event: event.kind }, 'event listener failed');
      }
    }
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }
}

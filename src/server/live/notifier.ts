/**
 * Commit notifications for live waits (docs/protocol.md §Live waits). A push that wrote something publishes one
 * event for its home; held waits of that home subscribe. The interface is all the live waits know of it: this
 * in-process implementation serves one server process, and a multi-instance store (PostgreSQL LISTEN/NOTIFY) can
 * implement the same interface without the waits changing.
 */
import type { Micros } from '../../protocol/index.js';

export interface ChangeEvent {
  readonly homeId: string;
  /** The client whose push committed the change; its own waits are not woken by it. */
  readonly originClientId: string;
  /** The commit watermark after the change (the push's `server_time`). */
  readonly seq: Micros;
}

export type ChangeListener = (event: ChangeEvent) => void;

export interface ChangeNotifier {
  /** Calls `listener` for every event of `homeId` until the returned function is called. */
  subscribe(homeId: string, listener: ChangeListener): () => void;
  /** Announces a committed change; call after the commit, never inside the transaction. */
  publish(event: ChangeEvent): void;
}

/**
 * One process: the listeners of each home, called synchronously by `publish`. A home with one listener (the usual
 * case: one gateway holding one wait) keeps the function itself, not a Set: held waits are counted in thousands.
 */
export class InProcessChangeNotifier implements ChangeNotifier {
  private readonly homes = new Map<string, ChangeListener | Set<ChangeListener>>();

  subscribe(homeId: string, listener: ChangeListener): () => void {
    const current = this.homes.get(homeId);
    if (current === undefined) this.homes.set(homeId, listener);
    else if (current instanceof Set) current.add(listener);
    else this.homes.set(homeId, new Set([current, listener]));
    return () => this.unsubscribe(homeId, listener);
  }

  publish(event: ChangeEvent): void {
    const current = this.homes.get(event.homeId);
    if (current === undefined) return;
    if (!(current instanceof Set)) {
      current(event);
      return;
    }
    // Deleting from a Set while iterating it is safe (a listener may unsubscribe itself or another).
    for (const listener of current) listener(event);
  }

  /** Homes with at least one listener (tests, gauges). */
  homeCount(): number {
    return this.homes.size;
  }

  private unsubscribe(homeId: string, listener: ChangeListener): void {
    const current = this.homes.get(homeId);
    if (current === listener) {
      this.homes.delete(homeId);
    } else if (current instanceof Set) {
      current.delete(listener);
      if (current.size === 0) this.homes.delete(homeId);
    }
  }
}

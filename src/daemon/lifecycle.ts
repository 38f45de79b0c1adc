/**
 * One lifecycle shape for the daemon's parts: a component starts, and stops by draining what it has in flight
 * (within its own bound) before releasing what it holds. The daemon starts an ordered list and stops it in reverse:
 * what was started last (the supervisor, which says READY=1) is stopped first (STOPPING=1), and the store, opened
 * first, closes last, after every writer has drained into it.
 */
import type { Logger } from '../log.js';

export interface Component {
  readonly name: string;
  start(): void | Promise<void>;
  /** Drains, then releases; never throws (failures are logged by the stack). */
  stop(): void | Promise<void>;
}

export class ComponentStack {
  readonly #log: Logger;
  readonly #started: Component[] = [];

  constructor(logger: Logger) {
    this.#log = logger;
  }

  /** Starts `component` after the ones already started; returns it (for chaining in the daemon's wiring). */
  async start<C extends Component>(component: C): Promise<C> {
    await component.start();
    this.#started.push(component);
    return component;
  }

  /** Names of the started components, in start order. */
  names(): string[] {
    return this.#started.map((c) => c.name);
  }

  /** Stops every started component in reverse order; one that fails to stop is logged and the rest still stop. */
  async stopAll(): Promise<void> {
    while (this.#started.length > 0) {
      const component = this.#started.pop();
      if (component === undefined) break;
      try {
        await component.stop();
      } catch (err) {
        this.#log.error({ err, component: component.name }, 'component failed to stop cleanly');
      }
    }
  }
}

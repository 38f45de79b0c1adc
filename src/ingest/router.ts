/**
 * Topic router: finds the adapter that owns a topic (first registered wins) and remembers which adapter each device
 * speaks, so a downlink command goes back through the same dialect. Topics no adapter owns are not errors: other
 * clients talk on the broker too.
 */
import { levelsMatch, type IngestAdapter, type ParseResult } from './adapter.js';

export interface Routed {
  readonly adapter: IngestAdapter;
  readonly result: ParseResult;
  /** Devices of this message heard for the first time since the start (ingest logs them once). */
  readonly firstHeard: readonly string[];
}

interface CompiledFilter {
  readonly adapter: IngestAdapter;
  readonly levels: readonly string[];
}

const MAX_REMEMBERED_DEVICES = 100_000;

export class TopicRouter {
  readonly #filters: CompiledFilter[] = [];
  readonly #adapters: IngestAdapter[];
  readonly #deviceAdapter = new Map<string, IngestAdapter>();
  /** Adapters with run-time filters (Home Assistant discovery), recompiled lazily after a change. */
  readonly #dynamic: DynamicFilters[] = [];

  constructor(adapters: readonly IngestAdapter[]) {
    const names = new Set<string>();
    for (const adapter of adapters) {
      if (names.has(adapter.name)) throw new RangeError(`two ingest adapters are named ${JSON.stringify(adapter.name)}`);
      names.add(adapter.name);
      for (const filter of adapter.filters) this.#filters.push({ adapter, levels: filter.split('/') });
    }
    this.#adapters = [...adapters];
    for (const adapter of adapters) {
      if (!adapter.dynamicFilters) continue;
      const entry = new DynamicFilters(adapter);
      this.#dynamic.push(entry);
      adapter.onFiltersChanged?.(() => entry.invalidate());
    }
  }

  adapters(): readonly IngestAdapter[] {
    return this.#adapters;
  }

  /** The owning adapter's verdict on a message, or undefined when no adapter ingests this topic. */
  route(topic: string, payload: Buffer): Routed | undefined {
    if (topic.startsWith('$')) return undefined;
    const levels = topic.split('/');
    for (const filter of this.#filters) {
      if (!levelsMatch(filter.levels, levels)) continue;
      const result = filter.adapter.parse(topic, payload);
      if (result === undefined) continue;
      return this.#routed(filter.adapter, result);
    }
    for (const dynamic of this.#dynamic) {
      if (!dynamic.matches(topic, levels)) continue;
      const result = dynamic.adapter.parse(topic, payload);
      if (result === undefined) continue;
      return this.#routed(dynamic.adapter, result);
    }
    return undefined;
  }

  #routed(adapter: IngestAdapter, result: ParseResult): Routed {
    const firstHeard: string[] = [];
    if (result.ok) for (const update of result.updates) if (this.#remember(update.deviceId, adapter)) firstHeard.push(update.deviceId);
    return { adapter, result, firstHeard };
  }

  /** The adapter a device was last heard through, else the first that claims the id. */
  adapterForDevice(deviceId: string): IngestAdapter | undefined {
    return this.#deviceAdapter.get(deviceId) ?? this.#adapters.find((a) => a.ownsDevice?.(deviceId) ?? false);
  }

  /** Remembers the device's adapter; true when the device was not known yet. */
  #remember(deviceId: string, adapter: IngestAdapter): boolean {
    const before = this.#deviceAdapter.get(deviceId);
    if (before === adapter) return false;
    if (this.#deviceAdapter.size >= MAX_REMEMBERED_DEVICES) this.#deviceAdapter.clear();
    this.#deviceAdapter.set(deviceId, adapter);
    return before === undefined;
  }
}

/** An adapter's run-time filters: exact topics in a set, wildcard filters split into levels. */
class DynamicFilters {
  readonly adapter: IngestAdapter;
  #exact = new Set<string>();
  #wildcards: (readonly string[])[] = [];
  #stale = true;

  constructor(adapter: IngestAdapter) {
    this.adapter = adapter;
  }

  invalidate(): void {
    this.#stale = true;
  }

  matches(topic: string, levels: readonly string[]): boolean {
    if (this.#stale) this.#compile();
    return this.#exact.has(topic) || this.#wildcards.some((filter) => levelsMatch(filter, levels));
  }

  #compile(): void {
    this.#stale = false;
    this.#exact = new Set();
    this.#wildcards = [];
    for (const filter of this.adapter.dynamicFilters?.() ?? []) {
      if (/[+#]/.test(filter)) this.#wildcards.push(filter.split('/'));
      else this.#exact.add(filter);
    }
  }
}

/**
 * Compares what the server holds for a home with what the gateway holds: the demo's closing check and the
 * end-to-end tests' oracle ("the server ends with the latest state of every entity and nothing else").
 */
import type { StoreReader } from '../store/index.js';

export interface EntitySnapshot {
  readonly key: string;
  readonly data: string;
  readonly updatedAt: number;
}

export interface ConvergenceReport {
  readonly gatewayEntities: number;
  readonly serverEntities: number;
  /** Keys only the gateway has (not yet pushed, or lost). */
  readonly missingOnServer: string[];
  /** Keys only the server has. */
  readonly extraOnServer: string[];
  /** Keys both have with different data or updated_at. */
  readonly different: string[];
  readonly converged: boolean;
}

/** Canonical JSON (sorted keys), so key order never makes two equal states differ. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The live entities of a gateway store (the daemon's, or a reader opened on its file while it runs). */
export function gatewaySnapshot(store: Pick<StoreReader, 'entities'>): EntitySnapshot[] {
  return store.entities.all().map((e) => ({ key: `${e.entityType}/${e.entityId}`, data: canonicalJson(e.data), updatedAt: e.updatedAt }));
}

export function serverSnapshot(
  entities: ReadonlyArray<{ entity_type: string; entity_id: string; data: Record<string, unknown>; updated_at: number; deleted: boolean }>,
): EntitySnapshot[] {
  return entities
    .filter((e) => !e.deleted)
    .map((e) => ({ key: `${e.entity_type}/${e.entity_id}`, data: canonicalJson(e.data), updatedAt: e.updated_at }));
}

export function compareSnapshots(gateway: readonly EntitySnapshot[], server: readonly EntitySnapshot[]): ConvergenceReport {
  const g = new Map(gateway.map((e) => [e.key, e]));
  const s = new Map(server.map((e) => [e.key, e]));
  const missingOnServer = [...g.keys()].filter((k) => !s.has(k)).sort();
  const extraOnServer = [...s.keys()].filter((k) => !g.has(k)).sort();
  const different = [...g.entries()]
    .filter(([k, e]) => {
      const other = s.get(k);
      return other !== undefined && (other.data !== e.data || other.updatedAt !== e.updatedAt);
    })
    .map(([k]) => k)
    .sort();
  return {
    gatewayEntities: g.size,
    serverEntities: s.size,
    missingOnServer,
    extraOnServer,
    different,
    converged: missingOnServer.length === 0 && extraOnServer.length === 0 && different.length === 0,
  };
}

/**
 * Compares what the server holds for a home with what the gateway holds: the demo's closing check and the
 * end-to-end tests' oracle ("the server ends with the latest state of every entity and nothing else").
 */
import { z } from 'zod';
import type { Db } from '../store/db.js';

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

const GatewayRow = z.object({ entity_type: z.string(), entity_id: z.string(), data: z.string(), updated_at: z.number() });

export function gatewaySnapshot(db: Db): EntitySnapshot[] {
  const rows = z.array(GatewayRow).parse(db.prepare('SELECT entity_type, entity_id, data, updated_at FROM entities WHERE deleted = 0').all());
  return rows.map((r) => ({ key: `${r.entity_type}/${r.entity_id}`, data: canonicalJson(JSON.parse(r.data)), updatedAt: r.updated_at }));
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

/**
 * PostgreSQL for a test file: a fresh empty database on the run's private cluster (test/pg-global-setup.ts). Fails
 * (never skips) when PostgreSQL is not available, saying why and how to get it.
 */
import { inject } from 'vitest';
import { createDatabase } from './pg-cluster.js';

/** Creates a fresh database and returns its postgres:// URL. */
export async function freshDatabase(prefix = 'ib'): Promise<string> {
  const pg = inject('pg');
  if (!pg.ok) throw new Error(`this test needs PostgreSQL: ${pg.error}`);
  return createDatabase(pg.cluster, prefix);
}

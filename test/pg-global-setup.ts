/**
 * vitest globalSetup: one private PostgreSQL cluster for the whole run (test/helpers/pg-cluster.ts), each test file
 * making fresh databases on it (test/helpers/pg.ts). When the binaries are missing the run goes on and every test
 * that needs PostgreSQL fails with the reason; tests that do not need it are unaffected. The cluster is stopped at
 * the end of the run, and by its watchdog if the run is killed.
 */
import type { TestProject } from 'vitest/node';
import { PgUnavailableError, startPgCluster, type PgClusterInfo } from './helpers/pg-cluster.js';

export type ProvidedPg = { ok: true; cluster: Omit<PgClusterInfo, 'pid'> } | { ok: false; error: string };

declare module 'vitest' {
  export interface ProvidedContext {
    pg: ProvidedPg;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  try {
    const cluster = await startPgCluster();
    const { host, port, user, password, dir } = cluster;
    project.provide('pg', { ok: true, cluster: { host, port, user, password, dir } });
    return () => cluster.stop();
  } catch (err) {
    const reason = err instanceof PgUnavailableError ? err.message : `the private PostgreSQL cluster did not start: ${(err as Error).message}`;
    project.provide('pg', { ok: false, error: reason });
    return async () => undefined;
  }
}

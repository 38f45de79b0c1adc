/**
 * The server's two stores, for tests that must hold on both (one code path for the assertions):
 *
 *   forEachBackend((backend) => {
 *     describe(`sync (${backend.name})`, () => { … startTestServer(overrides, { backend }) … });
 *   });
 *
 * `sqlite` keeps the data dir of startTestServer; `postgres` gives every server a fresh database on the run's
 * private cluster (test/pg-global-setup.ts) and fails, never skips, when PostgreSQL is not available.
 * INBETWEENIES_TEST_BACKENDS=sqlite (or postgres) narrows a local run to one.
 */
import { freshDatabase } from './pg.js';

export type BackendName = 'sqlite' | 'postgres';

export interface Backend {
  readonly name: BackendName;
  /** A fresh database URL for a server (postgres), or undefined (sqlite: the data dir is the store). */
  databaseUrl(): Promise<string | undefined>;
}

export const SQLITE: Backend = { name: 'sqlite', databaseUrl: async () => undefined };
export const POSTGRES: Backend = { name: 'postgres', databaseUrl: () => freshDatabase('srv') };

export function selectedBackends(): Backend[] {
  const wanted = (process.env.INBETWEENIES_TEST_BACKENDS ?? 'sqlite,postgres').split(',').map((s) => s.trim());
  return [SQLITE, POSTGRES].filter((b) => wanted.includes(b.name));
}

/** Declares the same tests once per backend. */
export function forEachBackend(declare: (backend: Backend) => void): void {
  for (const backend of selectedBackends()) declare(backend);
}

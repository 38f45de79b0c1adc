/**
 * The store's one write path. Every write of the gateway is a write program — a function of the row operations
 * (StoreTx) and plain data — run by the writer in a transaction under one of two disciplines:
 *
 * - durable: committed with synchronous=FULL, so the commit is fsynced before the program's promise resolves. A
 *   QoS 1 PUBACK (and anything else that promises persistence) waits for it.
 * - relaxed: committed without fsync (synchronous=NORMAL for that commit). Only for what can be redone after a
 *   power cut (sync-side writes; docs/architecture.md §Which commits are fsynced). WAL keeps commit order, so the
 *   next durable commit makes every earlier relaxed one durable too.
 *
 * Programs are defined by the layer that owns the rule (ingest's local updates, sync's delta pages and push
 * results, the store's own small writes) with `defineWriteProgram(import.meta.url, name, run)`: the reference
 * carries the module, so a writer on another thread can load the program by itself and the store never imports the
 * layers above it. Arguments and results are plain data (structured-cloneable).
 */
import type { StoreTx, TxEffects } from './tx.js';

export interface WriteProgram<A, R> {
  /** URL of the module that defines (and exports) the program. */
  readonly module: string;
  readonly name: string;
  readonly run: (tx: StoreTx, args: A) => R;
}

/** Defines a write program; export the returned reference from `module` so a writer thread can find it by name. */
export function defineWriteProgram<A, R>(module: string, name: string, run: (tx: StoreTx, args: A) => R): WriteProgram<A, R> {
  if (!/^[a-zA-Z][\w.-]{0,63}$/.test(name)) throw new TypeError(`write program: expected a name like "applyDeltaPage", given ${JSON.stringify(name)}`);
  return { module, name, run };
}

export function isWriteProgram(value: unknown): value is WriteProgram<unknown, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    'module' in value &&
    'name' in value &&
    'run' in value &&
    typeof value.module === 'string' &&
    typeof value.name === 'string' &&
    typeof value.run === 'function'
  );
}

export type Discipline = 'durable' | 'relaxed';

/** The outcome of one program, with what the store must learn from its transaction. */
export interface WriteOutcome<R> extends TxEffects {
  readonly result: R;
}

/** Maintenance that cannot run inside a transaction, on the write connection. */
export type MaintenanceOp =
  | { readonly op: 'checkpoint' }
  | { readonly op: 'limits'; readonly readOnly?: boolean; readonly maxPages?: number | null }
  /** Settles after every write submitted before it. */
  | { readonly op: 'barrier' }
  | { readonly op: 'close' };

/** Runs programs on the write connection, in submission order (FIFO across every caller). */
export interface StoreWriter {
  readonly kind: 'inline' | 'worker';
  run<A, R>(program: WriteProgram<A, R>, args: A, discipline: Discipline): Promise<WriteOutcome<R>>;
  maintain(op: MaintenanceOp): Promise<unknown>;
}

/** The error of a failed write, with SQLite's code kept (SQLITE_FULL, SQLITE_READONLY, …) for the caller to branch on. */
export class StoreWriteError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreWriteError';
    this.code = code;
  }
}

/** SQLite errors about the store as a whole (disk full, read-only, I/O): retrying a part would only fail again. */
const STORE_WIDE = /^SQLITE_(FULL|IOERR|READONLY|BUSY|LOCKED|CANTOPEN|NOTADB|CORRUPT|PROTOCOL|NOMEM)/;

export function isStoreWideError(err: unknown): boolean {
  return STORE_WIDE.test(sqliteCode(err));
}

/** SQLite's code of an error (better-sqlite3's SqliteError.code), or '' */
export function sqliteCode(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
  return typeof code === 'string' ? code : '';
}

/**
 * The write engine: the one write connection and its row operations, running programs in transactions under their
 * discipline (writer.ts). It is synchronous and thread-agnostic: the inline writer runs it on the main thread, the
 * worker writer on its own thread.
 */
import { openWriteConnection, relaxedTransaction, type ConnectionOptions, type Db } from './db.js';
import { StoreTx } from './tx.js';
import { sqliteCode, StoreWriteError, type Discipline, type MaintenanceOp, type WriteOutcome, type WriteProgram } from './writer.js';

export class WriteEngine {
  readonly #db: Db;
  readonly #tx: StoreTx;

  constructor(path: string, options: ConnectionOptions = {}) {
    this.#db = openWriteConnection(path, options);
    this.#tx = new StoreTx(this.#db);
  }

  /** Runs one program in its own transaction; throws StoreWriteError (SQLite's code kept) when nothing was committed. */
  run<A, R>(program: WriteProgram<A, R>, args: A, discipline: Discipline): WriteOutcome<R> {
    const tx = this.#tx;
    tx.effects = { stateWrites: [], corrupt: [] };
    const body = (): R => program.run(tx, args);
    try {
      const result = discipline === 'durable' ? this.#db.transaction(body)() : relaxedTransaction(this.#db, body);
      return { result, ...tx.effects };
    } catch (err) {
      throw asWriteError(err, program.name);
    }
  }

  maintain(op: MaintenanceOp): unknown {
    try {
      if (op.op === 'checkpoint') return this.#checkpoint();
      if (op.op === 'barrier') return undefined;
      if (op.op === 'limits') {
        if (op.readOnly !== undefined) this.#db.pragma(`query_only = ${op.readOnly ? 'ON' : 'OFF'}`);
        if (op.maxPages !== undefined) this.#db.pragma(`max_page_count = ${op.maxPages === null ? 1_073_741_823 : Math.max(1, Math.floor(op.maxPages))}`);
        return undefined;
      }
      this.#db.close();
      return undefined;
    } catch (err) {
      throw asWriteError(err, op.op);
    }
  }

  /** WAL checkpoint (TRUNCATE: the -wal file shrinks back) and PRAGMA optimize (sqlite.org/pragma.html#pragma_optimize). */
  #checkpoint(): { busy: number; log: number; checkpointed: number } {
    const rows: unknown = this.#db.pragma('wal_checkpoint(TRUNCATE)');
    const first: unknown = Array.isArray(rows) ? rows[0] : undefined;
    const field = (name: string): number => {
      const v: unknown = typeof first === 'object' && first !== null ? Reflect.get(first, name) : undefined;
      return typeof v === 'number' ? v : -1;
    };
    this.#db.pragma('optimize');
    return { busy: field('busy'), log: field('log'), checkpointed: field('checkpointed') };
  }
}

function asWriteError(err: unknown, what: string): StoreWriteError {
  if (err instanceof StoreWriteError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StoreWriteError(`${what}: ${message}`, sqliteCode(err), { cause: err });
}

/**
 * The writer on the calling thread: each program runs at once, synchronously, in its own transaction (the durable
 * commit's fsync blocks the event loop meanwhile). Used where a second thread is not worth its memory: the CLI's
 * one-off writes, unit tests, and `store.writer: inline` (docs/operations.md). Promises settle in submission order.
 */
import type { ConnectionOptions } from './db.js';
import { WriteEngine } from './engine.js';
import type { Discipline, MaintenanceOp, StoreWriter, WriteOutcome, WriteProgram } from './writer.js';

export function createInlineWriter(path: string, options: ConnectionOptions = {}): StoreWriter {
  const engine = new WriteEngine(path, options);
  let closed = false;
  const refuse = (): Promise<never> => Promise.reject(new Error('store writer is closed'));
  return {
    kind: 'inline',
    run<A, R>(program: WriteProgram<A, R>, args: A, discipline: Discipline): Promise<WriteOutcome<R>> {
      if (closed) return refuse();
      try {
        return Promise.resolve(engine.run(program, args, discipline));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
    maintain(op: MaintenanceOp): Promise<unknown> {
      if (closed) return op.op === 'close' ? Promise.resolve(undefined) : refuse();
      if (op.op === 'close') closed = true;
      try {
        return Promise.resolve(engine.maintain(op));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },
  };
}

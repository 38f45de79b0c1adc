/**
 * The writer on its own thread (writer-thread.ts): the main thread posts each program (module URL, name, plain-data
 * arguments, discipline) and gets the outcome back once it committed — for a durable program, after the fsync. The
 * event loop keeps running meanwhile, so the broker reads sockets while SQLite works and the disk syncs. Requests
 * run in the order they were posted. The thread keeps the process alive only while requests are in flight.
 *
 * Running from TypeScript sources (vitest), a module URL names a .ts file the plain-Node thread cannot load; it is
 * mapped to its compiled counterpart under dist/ (built by `npm run build`, which `npm test` runs first), and refused
 * with a clear error when that file is older than its source.
 */
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ConnectionOptions } from './db.js';
import type { WriterReply, WriterRequest } from './writer-protocol.js';
import { StoreWriteError, type Discipline, type MaintenanceOp, type StoreWriter, type WriteOutcome, type WriteProgram } from './writer.js';

export interface WorkerWriterOptions extends ConnectionOptions {
  /** Heap cap of the writer thread's isolate (old generation), MiB; default 16. */
  readonly maxHeapMb?: number;
}

/** The URL a plain-Node thread can import for `url`: itself, or for a TypeScript source its compiled dist/ file. */
export function runnableModule(url: string): string {
  if (!url.endsWith('.ts')) return url;
  const source = fileURLToPath(url);
  const at = source.lastIndexOf('/src/');
  if (at < 0) throw new StoreWriteError(`store writer: cannot map ${source} to its compiled file (not under src/)`, '');
  const built = `${source.slice(0, at)}/dist/${source.slice(at + '/src/'.length, -'.ts'.length)}.js`;
  if (!existsSync(built)) throw new StoreWriteError(`store writer: ${built} is missing: run \`npm run build\` first`, '');
  if (statSync(built).mtimeMs < statSync(source).mtimeMs) {
    throw new StoreWriteError(`store writer: ${built} is older than ${source}: run \`npm run build\``, '');
  }
  return pathToFileURL(built).href;
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
}

export function createWorkerWriter(path: string, options: WorkerWriterOptions = {}): StoreWriter {
  const script = runnableModule(new URL(`./writer-thread.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url).href);
  const worker = new Worker(new URL(script), {
    workerData: { path, synchronous: options.synchronous ?? 'FULL' },
    // The thread needs none of the process's command-line flags (some, like --input-type, even refuse a worker); its
    // heap is bounded by resourceLimits.
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? 16, maxYoungGenerationSizeMb: 2 },
    stdout: false,
    stderr: false,
  });
  const pending = new Map<number, Pending>();
  const modules = new Map<string, string>();
  let nextId = 1;
  let dead: Error | undefined;
  let closed = false;
  worker.unref();

  const fail = (err: Error): void => {
    dead ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    worker.unref();
  };
  worker.on('message', (reply: WriterReply) => {
    const p = pending.get(reply.id);
    if (p === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if (reply.ok) p.resolve(reply.value);
    else p.reject(new StoreWriteError(reply.error.message, reply.error.code));
  });
  worker.on('error', (err) => fail(new StoreWriteError(`store writer thread failed: ${err.message}`, 'SQLITE_IOERR', { cause: err })));
  worker.on('exit', (code) => {
    if (!closed) fail(new StoreWriteError(`store writer thread exited (${code})`, 'SQLITE_IOERR'));
  });

  function post(request: WriterRequest): Promise<unknown> {
    if (dead) return Promise.reject(dead);
    if (closed) return Promise.reject(new StoreWriteError('store writer is closed', ''));
    return new Promise((resolve, reject) => {
      pending.set(request.id, { resolve, reject });
      if (pending.size === 1) worker.ref();
      worker.postMessage(request);
    });
  }

  function moduleUrl(module: string): string {
    let url = modules.get(module);
    if (url === undefined) {
      url = runnableModule(module);
      modules.set(module, url);
    }
    return url;
  }

  return {
    kind: 'worker',
    run<A, R>(program: WriteProgram<A, R>, args: A, discipline: Discipline): Promise<WriteOutcome<R>> {
      let module: string;
      try {
        module = moduleUrl(program.module);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      // The writer thread answers a run request with that program's WriteOutcome (writer-thread.ts `handle`).
      return post({ id: nextId++, kind: 'run', module, name: program.name, args, discipline }) as Promise<WriteOutcome<R>>;
    },
    async maintain(op: MaintenanceOp): Promise<unknown> {
      if (op.op !== 'close') return post({ id: nextId++, kind: 'maintain', op });
      if (closed || dead) return undefined;
      const done = post({ id: nextId++, kind: 'maintain', op });
      closed = true;
      try {
        await done;
      } finally {
        await worker.terminate();
      }
      return undefined;
    },
  };
}

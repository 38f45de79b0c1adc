/**
 * The store's writer thread (worker_threads): owns the write connection and runs write programs and maintenance in
 * the order the main thread sent them, one at a time, so a durable commit's fsync never stops the main thread's event
 * loop (aedes keeps reading sockets meanwhile). A program's module is imported on its first use; its reference is
 * found among the module's exports by name (writer.ts `defineWriteProgram`). Loads no zod, pino or network stack.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WriteEngine } from './engine.js';
import { isWriteProgram, sqliteCode, type WriteProgram } from './writer.js';
import { WriterRequestSchema, type WriterReply, type WriterRequest } from './writer-protocol.js';

const port = parentPort;
if (port === null) throw new Error('store writer: must run in a worker thread');

const setup: unknown = workerData;
const path = typeof setup === 'object' && setup !== null && 'path' in setup && typeof setup.path === 'string' ? setup.path : undefined;
const synchronous = typeof setup === 'object' && setup !== null && 'synchronous' in setup && setup.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL';
if (path === undefined) throw new Error('store writer: workerData.path (the store file) is required');

const engine = new WriteEngine(path, { synchronous });
const modules = new Map<string, Promise<unknown>>();
const queue: WriterRequest[] = [];
let draining = false;

async function programOf(module: string, name: string): Promise<WriteProgram<unknown, unknown>> {
  let loaded = modules.get(module);
  if (loaded === undefined) {
    loaded = import(module);
    modules.set(module, loaded);
  }
  const exports = await loaded;
  const program = Object.values(typeof exports === 'object' && exports !== null ? exports : {}).find((value) => isWriteProgram(value) && value.name === name);
  if (program === undefined || !isWriteProgram(program)) throw new Error(`store writer: ${module} exports no write program ${JSON.stringify(name)}`);
  return program;
}

async function handle(request: WriterRequest): Promise<WriterReply> {
  try {
    if (request.kind === 'maintain') return { id: request.id, ok: true, value: engine.maintain(request.op) };
    const program = await programOf(request.module, request.name);
    const outcome = engine.run(program, request.args, request.discipline);
    return { id: request.id, ok: true, value: outcome };
  } catch (err) {
    return { id: request.id, ok: false, error: { message: err instanceof Error ? err.message : String(err), code: sqliteCode(err) } };
  }
}

/** Runs queued requests strictly in order; a program's first use waits for its module, the rest wait behind it. */
async function drain(): Promise<void> {
  if (draining) return;
  draining = true;
  try {
    for (let request = queue.shift(); request !== undefined; request = queue.shift()) {
      const reply = await handle(request);
      port?.postMessage(reply);
      if (request.kind === 'maintain' && request.op.op === 'close') {
        port?.close();
        return;
      }
    }
  } finally {
    draining = false;
  }
}

port.on('message', (message: unknown) => {
  const parsed = WriterRequestSchema(message);
  if (!parsed.ok) {
    port.postMessage({ id: parsed.id, ok: false, error: { message: `store writer: ${parsed.problem}`, code: '' } } satisfies WriterReply);
    return;
  }
  queue.push(parsed.value);
  void drain();
});

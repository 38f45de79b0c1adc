/**
 * Messages between the main thread and the store's writer thread. Both sides are this package; requests are still
 * checked on arrival (a malformed one is answered with an error, never run), by hand: the writer loads no zod.
 */
import type { Discipline, MaintenanceOp, WriteOutcome } from './writer.js';

export type WriterRequest =
  | { readonly id: number; readonly kind: 'run'; readonly module: string; readonly name: string; readonly args: unknown; readonly discipline: Discipline }
  | { readonly id: number; readonly kind: 'maintain'; readonly op: MaintenanceOp };

export type WriterReply =
  | { readonly id: number; readonly ok: true; readonly value: WriteOutcome<unknown> | unknown }
  | { readonly id: number; readonly ok: false; readonly error: { readonly message: string; readonly code: string } };

type Checked<T> = { ok: true; value: T } | { ok: false; id: number; problem: string };

function field(value: object, name: string): unknown {
  return Reflect.get(value, name);
}

function maintenanceOp(value: unknown): MaintenanceOp | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const op = field(value, 'op');
  if (op === 'checkpoint' || op === 'barrier' || op === 'close') return { op };
  if (op !== 'limits') return undefined;
  const readOnly = field(value, 'readOnly');
  const maxPages = field(value, 'maxPages');
  if (readOnly !== undefined && typeof readOnly !== 'boolean') return undefined;
  if (maxPages !== undefined && maxPages !== null && typeof maxPages !== 'number') return undefined;
  return { op, ...(readOnly === undefined ? {} : { readOnly }), ...(maxPages === undefined ? {} : { maxPages }) };
}

/** Checks a request that arrived at the writer. */
export function WriterRequestSchema(message: unknown): Checked<WriterRequest> {
  if (typeof message !== 'object' || message === null) return { ok: false, id: -1, problem: 'request is not an object' };
  const id = field(message, 'id');
  if (typeof id !== 'number' || !Number.isInteger(id)) return { ok: false, id: -1, problem: 'request without an integer id' };
  const kind = field(message, 'kind');
  if (kind === 'maintain') {
    const op = maintenanceOp(field(message, 'op'));
    return op === undefined ? { ok: false, id, problem: 'unknown maintenance op' } : { ok: true, value: { id, kind, op } };
  }
  if (kind !== 'run') return { ok: false, id, problem: `unknown request kind ${JSON.stringify(kind)}` };
  const module = field(message, 'module');
  const name = field(message, 'name');
  const discipline = field(message, 'discipline');
  if (typeof module !== 'string' || !module.startsWith('file:')) return { ok: false, id, problem: 'program module must be a file: URL' };
  if (typeof name !== 'string') return { ok: false, id, problem: 'program name must be a string' };
  if (discipline !== 'durable' && discipline !== 'relaxed') return { ok: false, id, problem: 'discipline must be durable or relaxed' };
  return { ok: true, value: { id, kind, module, name, args: field(message, 'args'), discipline } };
}

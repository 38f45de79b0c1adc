/**
 * Rows as either database returns them, checked with zod at the boundary (the type and the check from one schema): a
 * row that does not have the shape its schema says is a STORE error, never a value cast with `as`. Both stores use
 * these (pg/rows.ts re-exports them).
 */
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import { ApplyStatusSchema } from '../../protocol/index.js';

/** A stored push result (push_results), as both stores read it back. */
export const ResultRowSchema = z.object({
  client_sync_id: z.string(),
  status: ApplyStatusSchema,
  server_sync_id: z.string().nullable(),
  entity_type: z.string(),
  entity_id: z.string(),
  detail: z.string().nullable(),
});

/** Checks every row of a result against `schema`. */
export function rowsOf<T extends z.ZodType>(schema: T, rows: readonly unknown[], what: string): z.infer<T>[] {
  const out: z.infer<T>[] = [];
  for (const row of rows) {
    const parsed = schema.safeParse(row);
    if (!parsed.success) throw new GatewayError('STORE', `${what}: unexpected row shape (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    out.push(parsed.data);
  }
  return out;
}

/** The single row of a result, checked; undefined when there is none. */
export function rowOf<T extends z.ZodType>(schema: T, rows: readonly unknown[], what: string): z.infer<T> | undefined {
  return rows.length === 0 ? undefined : rowsOf(schema, rows.slice(0, 1), what)[0];
}

/**
 * Rows as PostgreSQL returns them, checked with zod at the boundary (the type and the check from one schema): a row
 * that does not have the shape the schema below says is a STORE error, never a value cast with `as`.
 */
import { z } from 'zod';
import { ENTITY_TYPES } from '../../protocol/index.js';

const Int = z.number().int();

export const ClientRowSchema = z.object({
  client_id: z.string(),
  secret: z.string(),
  home_id: z.string(),
  last_ack_watermark: Int.nullable(),
  last_ack_at: Int.nullable(),
});

export const TokenRowSchema = z.object({
  kind: z.enum(['access', 'refresh']),
  expires_at: Int,
  client_id: z.string(),
  secret: z.string(),
  home_id: z.string(),
  last_ack_watermark: Int.nullable(),
  last_ack_at: Int.nullable(),
});

export const OpenSyncRowSchema = z.object({
  status: z.enum(['ok', 'future_watermark', 'purged', 'no_home']),
  h: Int.nullable(),
});

export const ClockRowSchema = z.object({ clock: Int, now: Int });
export const ValueRowSchema = z.object({ value: Int.nullable() });
export const TextValueRowSchema = z.object({ value: z.string() });
export const CountRowSchema = z.object({ n: Int });

/** A delta row joined to its home (LEFT JOIN: a home with no matching entity gives one row of nulls). */
export const PageRowSchema = z.object({
  purged_through: Int,
  entity_type: z.enum(ENTITY_TYPES).nullable(),
  entity_id: z.string().nullable(),
  data: z.string().nullable(),
  updated_at: Int.nullable(),
  sync_id: z.string().nullable(),
  deleted: z.boolean().nullable(),
  seq: Int.nullable(),
  created_seq: Int.nullable(),
  priority: Int.nullable(),
  attrs: z.string().nullable(),
  claimed_at: Int.nullable(),
});

export const EntryRowSchema = z.object({ entry: z.string() });

export const StoredVersionRowSchema = z.object({
  entity_type: z.string(),
  entity_id: z.string(),
  data: z.string(),
  updated_at: Int,
  sync_id: z.string(),
  deleted: z.boolean(),
  created_seq: Int,
  origin_client: z.string().nullable(),
});

/** A stored version as a push reads it, with the extensions' columns (store/plan.ts StoredVersion). */
export const PushVersionRowSchema = StoredVersionRowSchema.extend({
  seq: Int,
  attrs: z.string().nullable(),
  foreign_seq: Int,
  claimed_at: Int.nullable(),
  hash: z.string().nullable(),
});

/** A home's digest sum of one bucket (numeric as text). */
export const DigestRowSchema = z.object({ bucket: Int.min(0).max(15), sum: z.string().regex(/^[0-9]{1,20}$/) });

/** A row written before the digest existed. */
export const UnhashedRowSchema = z.object({
  home_id: z.string(),
  entity_type: z.string(),
  entity_id: z.string(),
  data: z.string(),
  deleted: z.boolean(),
});

export const HashRowSchema = z.object({ bucket: Int.min(0).max(15), hash: z.string().regex(/^[0-9a-f]{16}$/) });

export const EntityRowSchema = StoredVersionRowSchema.extend({ seq: Int, priority: Int });

export { ResultRowSchema, rowOf, rowsOf } from '../store/rows.js';

/**
 * The `data` object of each entity type (field list in docs/protocol.md §Data model).
 * Extra fields are kept (loose objects): a FunkyGibbon may carry more than this profile knows about. DATA_SCHEMAS
 * check the known fields only and build a small object of those (strict copies of large states would double the
 * memory of a push); callers keep the data they validated.
 * `id`, `sync_id` and `updated_at` may appear inside `data` (original Python FunkyGibbon spelling); they are read
 * by `splitEnvelopeFields` and stored as columns, not as part of the data.
 */
import { z } from 'zod';
import type { EntityType } from './entity-types.js';
import { PlainObjectSchema, TimestampSchema } from './messages.js';

const Name = z.string().min(1).max(200);
const OptionalRef = z.string().min(1).max(256).nullable().optional();

export const RoomDataSchema = z.looseObject({
  name: Name,
  home_id: z.string().max(256).optional(),
  floor: z.union([z.number(), z.string().max(64)]).nullable().optional(),
  icon: z.string().max(64).nullable().optional(),
});

export const DeviceDataSchema = z.looseObject({
  name: Name,
  room_id: OptionalRef,
  home_id: z.string().max(256).optional(),
  device_type: z.string().max(64).nullable().optional(),
  manufacturer: z.string().max(200).nullable().optional(),
  model: z.string().max(200).nullable().optional(),
});

export const EntityStateDataSchema = z.looseObject({
  device_id: z.string().min(1).max(256),
  state: PlainObjectSchema,
  home_id: z.string().max(256).optional(),
});

export type RoomData = z.infer<typeof RoomDataSchema>;
export type DeviceData = z.infer<typeof DeviceDataSchema>;
export type EntityStateData = z.infer<typeof EntityStateDataSchema>;

/** Validators of `data` per type: the known fields only (unknown ones are neither checked nor copied). */
export const DATA_SCHEMAS: Readonly<Record<EntityType, z.ZodType<Record<string, unknown>>>> = {
  room: RoomDataSchema.strip(),
  device: DeviceDataSchema.strip(),
  entity_state: EntityStateDataSchema.strip(),
};

const EnvelopeFieldsSchema = z.object({
  id: z.string().min(1).max(256).optional(),
  sync_id: z.string().min(1).max(256).optional(),
  updated_at: TimestampSchema.optional(),
});

export interface SplitData {
  readonly body: Record<string, unknown>;
  readonly id: string | undefined;
  readonly syncId: string | undefined;
  readonly updatedAt: string | undefined;
}

/** Separates `id`, `sync_id` and `updated_at` from the rest of a `data` object; fails on wrong types. */
export function splitEnvelopeFields(
  data: Record<string, unknown>,
): { ok: true; value: SplitData } | { ok: false; problems: string[] } {
  // null means absent: the Blowing-Off client sends `"sync_id": null` for entities it created (docs/protocol.md
  // §Compatibility).
  const parsed = EnvelopeFieldsSchema.safeParse({
    id: data.id ?? undefined,
    sync_id: data.sync_id ?? undefined,
    updated_at: data.updated_at ?? undefined,
  });
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => `data.${i.path.map(String).join('.')}: ${i.message}`) };
  }
  const { id: _id, sync_id: _syncId, updated_at: _updatedAt, ...body } = data;
  return {
    ok: true,
    value: { body, id: parsed.data.id, syncId: parsed.data.sync_id, updatedAt: parsed.data.updated_at },
  };
}

/**
 * Entity types of the data model (docs/protocol.md §Data model): rooms, devices and entity_states. The wire spells them
 * singular inside `changes` and plural in `entity_types` (seed §Message Formats); both spellings are accepted
 * everywhere (original Python FunkyGibbon compatibility) and normalised to the singular.
 */
export const ENTITY_TYPES = ['entity_state', 'device', 'room'] as const;
export type EntityType = (typeof ENTITY_TYPES)[number];

/** Seed §Batching "Priority ordering (states > devices > rooms)": lower sorts first. */
export const ENTITY_PRIORITY: Readonly<Record<EntityType, number>> = { entity_state: 0, device: 1, room: 2 };

const SPELLINGS: Readonly<Record<string, EntityType>> = {
  entity_state: 'entity_state',
  entity_states: 'entity_state',
  device: 'device',
  devices: 'device',
  room: 'room',
  rooms: 'room',
};

export function normaliseEntityType(name: string): EntityType | undefined {
  return Object.prototype.hasOwnProperty.call(SPELLINGS, name) ? SPELLINGS[name] : undefined;
}

export function byPriority(a: EntityType, b: EntityType): number {
  return ENTITY_PRIORITY[a] - ENTITY_PRIORITY[b];
}

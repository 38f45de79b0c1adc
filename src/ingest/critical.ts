/**
 * Which local changes are critical (seed §Polling "Instant push for critical changes"; by default
 * locks, alarms, smoke and leak sensors). Pure: the scheduler decides what to do with the answer.
 */
export interface CriticalConfig {
  /** Every state change of a device of one of these types is critical. */
  readonly deviceTypes: readonly string[];
  /** A change of one of these attributes is critical whatever the device type. */
  readonly attributes: readonly string[];
}

export const DEFAULT_CRITICAL_CONFIG: CriticalConfig = {
  deviceTypes: ['lock', 'alarm', 'smoke', 'leak', 'water_leak'],
  attributes: ['lock_state', 'alarm', 'smoke', 'water_leak', 'leak', 'tamper'],
};

/** A change of `attributes` (only those whose value changed) on a device of `deviceType`: is it critical? */
export type CriticalPredicate = (deviceType: string | null | undefined, attributes: Readonly<Record<string, unknown>>) => boolean;

/** The policy as a predicate, names lower-cased once (a batch compiles it once, then asks per change). */
export function criticalPredicate(config: CriticalConfig = DEFAULT_CRITICAL_CONFIG): CriticalPredicate {
  const types = new Set(config.deviceTypes.map((t) => t.toLowerCase()));
  const attributes = new Set(config.attributes.map((a) => a.toLowerCase()));
  return (deviceType, changed) => {
    const names = Object.keys(changed);
    if (names.length === 0) return false;
    if (deviceType && types.has(deviceType.toLowerCase())) return true;
    return names.some((name) => attributes.has(name.toLowerCase()));
  };
}

/**
 * True when a change of `attributes` (only the attributes whose value changed) on a device of `deviceType` must be
 * pushed at once. Names compare case-insensitively; an empty change is never critical.
 */
export function isCriticalChange(
  deviceType: string | null | undefined,
  attributes: Readonly<Record<string, unknown>>,
  config: CriticalConfig = DEFAULT_CRITICAL_CONFIG,
): boolean {
  return criticalPredicate(config)(deviceType, attributes);
}

/**
 * Device limits (ingest.deviceLimits): a rogue local client must not fill the store with devices (one created 20,000
 * in 4.5 s). Two caps:
 *
 * - per MQTT identity (a user, or the anonymous clients of one host: the broker's account, `user:<name>` /
 *   `anonymous@<host>`), at most `newPerMinute` new device ids a minute — a token bucket of that size refilled over a
 *   minute, decided here, on the main thread, before anything is queued for the store;
 * - at most `total` devices in the store — decided by the store's writer inside the transaction (local-writes.ts),
 *   where every committed device is visible.
 *
 * An update of a device the store already holds is never refused. A message whose only updates are refused is
 * acknowledged as MQTT says (the PUBACK, if any, is not withheld: the device must not resend it for ever) and not
 * stored; the refusal is counted and logged rate-limited.
 */
import { KeyedTokenBuckets } from '../util/token-bucket.js';
import type { LocalUpdate } from './local-writes.js';

export interface DeviceLimits {
  /** New device ids per identity per minute. */
  readonly newPerMinute: number;
  /** Devices in the store at most. */
  readonly total: number;
}

export const DEFAULT_DEVICE_LIMITS: DeviceLimits = { newPerMinute: 100, total: 5000 };

/** Identities tracked at once (the buckets of idle ones are forgotten first). */
const MAX_IDENTITIES = 10_000;

export interface DeviceAdmissionOptions {
  readonly limits: DeviceLimits;
  /** Whether the store holds this device (a read; the answer is cached). */
  readonly known: (deviceId: string) => boolean;
  readonly now: () => number;
}

export class DeviceAdmission {
  readonly limits: DeviceLimits;
  readonly #known: (deviceId: string) => boolean;
  readonly #buckets: KeyedTokenBuckets;
  /** Devices the store holds or this process admitted: no read and no token for them again. */
  readonly #seen = new Set<string>();

  constructor(options: DeviceAdmissionOptions) {
    const { newPerMinute, total } = options.limits;
    if (!(Number.isInteger(newPerMinute) && newPerMinute >= 1)) throw new RangeError(`device limits: expected newPerMinute ≥ 1, given ${String(newPerMinute)}`);
    if (!(Number.isInteger(total) && total >= 1)) throw new RangeError(`device limits: expected total ≥ 1, given ${String(total)}`);
    this.limits = options.limits;
    this.#known = options.known;
    this.#buckets = new KeyedTokenBuckets({ ratePerSecond: newPerMinute / 60, burst: newPerMinute, now: options.now, maxKeys: MAX_IDENTITIES });
  }

  /** The updates of devices that exist or that `account` may still create now, and the new device ids refused. */
  filter(account: string, updates: readonly LocalUpdate[]): { admitted: LocalUpdate[]; refused: string[] } {
    const admitted: LocalUpdate[] = [];
    const refused = new Set<string>();
    for (const update of updates) {
      const id = update.deviceId;
      if (refused.has(id)) continue;
      if (this.#admit(account, id)) admitted.push(update);
      else refused.add(id);
    }
    return { admitted, refused: [...refused] };
  }

  /** Devices the store's writer refused after all (the total): unknown again. */
  forget(deviceIds: readonly string[]): void {
    for (const id of deviceIds) this.#seen.delete(id);
  }

  #admit(account: string, deviceId: string): boolean {
    if (this.#seen.has(deviceId)) return true;
    if (!this.#known(deviceId) && !this.#buckets.take(account).ok) return false;
    // A cache: bounded by what the store holds plus what was admitted; cleared if it ever grows past that.
    if (this.#seen.size >= 4 * this.limits.total) this.#seen.clear();
    this.#seen.add(deviceId);
    return true;
  }
}

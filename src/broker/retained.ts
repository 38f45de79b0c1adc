/**
 * Limits on retained messages (docs/security.md §Limits): aedes keeps every retained message in memory for ever,
 * so 50,000 × 10 KB from one client took the gateway from 223 to 804 MiB. RetainedQuota accounts every retained
 * topic — its bytes (payload + topic) and the identity that retained it — in total and per identity:
 *
 * - a retained message replacing one on the same topic counts only the difference, and moves the topic to the new
 *   publisher's account; an empty retained payload deletes the topic (MQTT-3.3.1-10/11) and frees its quota;
 * - a retained message that would take its identity or the total over a limit is not retained, and the topic's
 *   previous retained message is removed too, so a new subscriber never receives a value its publisher has since
 *   replaced. The PUBLISH itself is acknowledged and delivered by the normal rules (MQTT 3.1.1 §3.3.1.3 lets a server
 *   keep what it can; the publisher is not told).
 *
 * The accounting is done where aedes stores (persistence.storeRetained), synchronously and in store order, so it
 * always equals what the persistence holds.
 */

export interface RetainedLimits {
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly maxMessagesPerIdentity: number;
  readonly maxBytesPerIdentity: number;
}

export interface RetainedUsage {
  readonly messages: number;
  readonly bytes: number;
}

/** stored: retained; deleted: an empty payload removed one; refused: over a limit (the previous one removed too). */
export type RetainVerdict = 'stored' | 'deleted' | 'refused' | 'unchanged';

interface Entry {
  readonly bytes: number;
  readonly owner: string;
}

interface Usage {
  messages: number;
  bytes: number;
}

/** Identity the gateway's own retained publishes are counted under: the totals apply, no per-identity cap. */
export const GATEWAY_OWNER = 'gateway';

export class RetainedQuota {
  readonly #limits: RetainedLimits;
  readonly #entries = new Map<string, Entry>();
  readonly #owners = new Map<string, Usage>();
  readonly #total: Usage = { messages: 0, bytes: 0 };

  constructor(limits: RetainedLimits) {
    for (const [key, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`RetainedQuota: ${key} must be an integer >= 1, given ${String(value)}`);
    }
    this.#limits = limits;
  }

  /** Accounts a retained PUBLISH of `payloadBytes` on `topic` by `owner`; 0 bytes is a delete. */
  apply(topic: string, payloadBytes: number, owner: string): RetainVerdict {
    const previous = this.#entries.get(topic);
    if (previous) this.#remove(topic, previous);
    if (payloadBytes === 0) return previous ? 'deleted' : 'unchanged';
    const bytes = payloadBytes + Buffer.byteLength(topic);
    const mine = this.#owners.get(owner) ?? { messages: 0, bytes: 0 };
    const capped = owner !== GATEWAY_OWNER;
    const over =
      this.#total.messages + 1 > this.#limits.maxMessages ||
      this.#total.bytes + bytes > this.#limits.maxBytes ||
      (capped && (mine.messages + 1 > this.#limits.maxMessagesPerIdentity || mine.bytes + bytes > this.#limits.maxBytesPerIdentity));
    if (over) return 'refused';
    this.#entries.set(topic, { bytes, owner });
    mine.messages += 1;
    mine.bytes += bytes;
    this.#owners.set(owner, mine);
    this.#total.messages += 1;
    this.#total.bytes += bytes;
    return 'stored';
  }

  #remove(topic: string, entry: Entry): void {
    this.#entries.delete(topic);
    const usage = this.#owners.get(entry.owner);
    if (usage) {
      usage.messages -= 1;
      usage.bytes -= entry.bytes;
      if (usage.messages === 0) this.#owners.delete(entry.owner);
    }
    this.#total.messages -= 1;
    this.#total.bytes -= entry.bytes;
  }

  total(): RetainedUsage {
    return { ...this.#total };
  }

  usage(owner: string): RetainedUsage {
    const usage = this.#owners.get(owner);
    return usage ? { ...usage } : { messages: 0, bytes: 0 };
  }

  /** Who retained the message on `topic` now, if any. */
  ownerOf(topic: string): string | undefined {
    return this.#entries.get(topic)?.owner;
  }
}

interface RetainedPacket {
  readonly topic: string;
  readonly payload: Buffer;
}

function isRetainedPacket(value: unknown): value is RetainedPacket {
  return typeof value === 'object' && value !== null && 'topic' in value && typeof value.topic === 'string' && 'payload' in value && Buffer.isBuffer(value.payload);
}

export interface RetainedLimiterOptions {
  readonly quota: RetainedQuota;
  /** The identity that published this payload (recorded by the publish hook), or undefined: the gateway itself. */
  readonly ownerOf: (payload: Buffer) => string | undefined;
  readonly onRefused: (topic: string, owner: string, bytes: number) => void;
}

/**
 * Puts the quota in front of a persistence's `storeRetained` (aedes calls it for every retained PUBLISH, and with an
 * empty payload for a delete). Throws when `persistence` has no such method (an aedes upgrade changed the contract).
 */
export function limitRetained(persistence: object, options: RetainedLimiterOptions): void {
  const original: unknown = Reflect.get(persistence, 'storeRetained');
  if (typeof original !== 'function') throw new TypeError('limitRetained: persistence.storeRetained is not a function');
  const store = (packet: unknown): Promise<void> => Promise.resolve(Reflect.apply(original, persistence, [packet]));
  const limited = (packet: unknown): Promise<void> => {
    if (!isRetainedPacket(packet)) return store(packet); // not ours to judge: stored as aedes asked
    const owner = options.ownerOf(packet.payload) ?? GATEWAY_OWNER;
    const verdict = options.quota.apply(packet.topic, packet.payload.length, owner);
    if (verdict !== 'refused') return store(packet);
    options.onRefused(packet.topic, owner, packet.payload.length);
    return store({ ...packet, payload: Buffer.alloc(0) }); // removes the topic's previous retained message
  };
  Reflect.set(persistence, 'storeRetained', limited);
}

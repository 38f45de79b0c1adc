/**
 * What a subscriber receives, fixed in the broker layer where aedes 1.2 gets it wrong:
 *
 * - Granted QoS (MQTT-3.8.4-6, MQTT-3.3.5-1): aedes downgrades an outgoing message by looking the client's
 *   subscription up by topic *name* (lib/client.js deliverQoS: `subscriptions[packet.topic]`), so a QoS 1 wildcard
 *   subscription receives QoS 2 publishes at QoS 2. Here each delivery is sent at the minimum of the published QoS
 *   and the highest QoS granted to the client's subscriptions that match the topic — one message per client,
 *   "respecting the maximum QoS of all the matching subscriptions" (aedes delivers one copy: it de-duplicates by
 *   broker counter).
 * - Delivery-time ACL: aedes calls `authorizeForward` for every message it sends a client, live or from the offline
 *   queue of a resumed session; the ACL is asked again there for the receiving client's identity, so a queued or
 *   retained message reaches only a client that may read its topic now, and a denied topic is never sent to a
 *   wildcard subscription that overlaps it.
 */
import type { AedesPublishPacket, Client } from 'aedes';
import { filterCovers } from './acl.js';
import type { BrokerAuth } from './auth.js';

type Deliver = (packet: unknown, callback: () => void) => void;

interface DeliveredPacket {
  topic: string;
  qos: number;
}

/** The highest QoS granted to a subscription in `subscriptions` (filter → { qos }) that matches `topic`. */
export function grantedQos(subscriptions: object, topic: string): number | undefined {
  const levels = topic.split('/');
  let best: number | undefined;
  for (const [filter, sub] of Object.entries(subscriptions)) {
    const qos: unknown = typeof sub === 'object' && sub !== null ? Reflect.get(sub, 'qos') : undefined;
    if (typeof qos !== 'number' || (best !== undefined && qos <= best)) continue;
    if (filterCovers(filter.split('/'), levels)) best = qos;
  }
  return best;
}

function grantedFor(client: Client, topic: string): number | undefined {
  const subscriptions: unknown = Reflect.get(client, 'subscriptions');
  return typeof subscriptions === 'object' && subscriptions !== null ? grantedQos(subscriptions, topic) : undefined;
}

function isPacket(value: unknown): value is DeliveredPacket {
  return typeof value === 'object' && value !== null && typeof Reflect.get(value, 'topic') === 'string' && typeof Reflect.get(value, 'qos') === 'number';
}

function deliverFunction(client: Client, name: 'deliver0' | 'deliverQoS'): Deliver {
  const fn: unknown = Reflect.get(client, name);
  if (typeof fn !== 'function') throw new TypeError(`aedes client has no ${name}(): the granted-QoS fix needs updating for this aedes`);
  return (packet, callback) => Reflect.apply(fn, client, [packet, callback]);
}

/**
 * Routes every delivery to `client` (called before its CONNECT is processed, so restored subscriptions use it too)
 * through the granted-QoS rule above.
 */
export function deliverAtGrantedQos(client: Client): void {
  const deliver0 = deliverFunction(client, 'deliver0');
  const deliverQoS = deliverFunction(client, 'deliverQoS');
  const route = (packet: unknown, callback: () => void): void => {
    if (!isPacket(packet)) {
      deliverQoS(packet, callback); // not a publish we can judge: aedes's own path
      return;
    }
    if (packet.qos === 0) {
      deliver0(packet, callback); // published at QoS 0: no subscription changes that
      return;
    }
    const granted = grantedFor(client, packet.topic);
    if (granted !== undefined && granted < packet.qos) packet.qos = granted;
    if (packet.qos === 0) deliver0(packet, callback);
    else deliverQoS(packet, callback);
  };
  // aedes reads these when a subscription is added, and deliverQoS calls this.deliver0 for QoS 0.
  Reflect.set(client, 'deliver0', route);
  Reflect.set(client, 'deliverQoS', route);
}

/**
 * aedes `authorizeForward`: null withholds the message from this client. A message from a resumed session's offline
 * queue keeps at least QoS 1 (it must be acknowledged to leave the queue) but never more than the granted QoS.
 */
export function createAuthorizeForward(auth: BrokerAuth): (client: Client, packet: AedesPublishPacket) => AedesPublishPacket | null {
  return (client, packet) => {
    if (!auth.mayReceive(client, packet.topic)) return null;
    if (packet.qos === 2) {
      const granted = grantedFor(client, packet.topic);
      if (granted !== undefined && granted < 2) packet.qos = 1;
    }
    return packet;
  };
}

/**
 * Downlink (docs/architecture.md §The life of a device state): commands go to each device through the adapter that owns
 * it (native: `devices/<id>/set`, JSON of the attributes, QoS 1, not retained), published by the broker itself. A
 * broker-originated publish does not pass aedes's authorizePublish, and no adapter ingests a command topic, so a
 * command is never read back as a state (no echo); the device's own next report closes the loop.
 */
import type { BusMessage } from '../broker/broker.js';
import { clip } from '../broker/log-fields.js';
import type { Logger } from '../log.js';
import type { DeviceCommand } from '../store/types.js';
import type { OutgoingMessage } from './adapter.js';
import type { IngestMetrics } from './metrics.js';
import type { TopicRouter } from './router.js';

export interface DownlinkResult {
  readonly published: number;
  /** Commands for which no adapter owns the device. */
  readonly unrouted: number;
  readonly failed: number;
}

export interface DownlinkOptions {
  /** Publishes on the message bus: the embedded broker, or the external broker's connection (external mode). */
  readonly publish: (message: BusMessage) => Promise<void>;
  readonly router: TopicRouter;
  readonly logger: Logger;
  readonly metrics: IngestMetrics;
}

export interface Downlink {
  publishCommands(commands: readonly DeviceCommand[]): Promise<DownlinkResult>;
}

export function createDownlink(options: DownlinkOptions): Downlink {
  const log = options.logger.child({ module: 'downlink' });
  const { router, metrics } = options;

  function publish(message: OutgoingMessage): Promise<Error | undefined> {
    return options.publish(message).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  }

  async function publishCommands(commands: readonly DeviceCommand[]): Promise<DownlinkResult> {
    let published = 0;
    let unrouted = 0;
    let failed = 0;
    for (const command of commands) {
      const adapter = router.adapterForDevice(command.deviceId);
      const messages = adapter?.commandsFor(command) ?? [];
      if (messages.length === 0) {
        unrouted += 1;
        log.warn({ deviceId: clip(command.deviceId), adapter: adapter?.name }, 'no adapter can carry a command to this device');
        continue;
      }
      for (const message of messages) {
        const err = await publish(message);
        if (err) {
          failed += 1;
          metrics.commandsFailed += 1;
          log.warn({ err, topic: clip(message.topic) }, 'command publish failed');
        } else {
          published += 1;
          metrics.commandsPublished += 1;
          log.info({ deviceId: clip(command.deviceId), topic: clip(message.topic), payload: clip(message.payload.toString('utf8'), 200) }, `command sent on ${clip(message.topic) ?? ''}`);
        }
      }
    }
    return { published, unrouted, failed };
  }

  return { publishCommands };
}

/**
 * A device simulator: ~30 realistic devices as real MQTT clients on the native topic convention
 * (devices/<id>/meta retained, devices/<id>/state), which also obey commands on devices/<id>/set and report the
 * new state back, as a real device closes the loop (docs/architecture.md §The life of a device state).
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import { buildHome, DEFAULT_HOME, metaOf, nextState, seededRandom, type DeviceKind, type Random, type SimDevice } from './devices.js';

export interface SimulatorOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly counts?: Readonly<Record<DeviceKind, number>>;
  /** State reports per second across the whole home. */
  readonly messagesPerSecond?: number;
  readonly seed?: number;
  readonly baseTopic?: string;
  readonly qos?: 0 | 1;
}

export class DeviceSimulator {
  readonly devices: SimDevice[];
  private readonly options: Required<Omit<SimulatorOptions, 'counts' | 'seed'>>;
  private readonly rnd: Random;
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sent = 0;
  private commands = 0;
  private readonly commandWaiters = new Set<(deviceId: string, attrs: Record<string, unknown>, at: number) => void>();

  constructor(options: SimulatorOptions) {
    if (!/^(mqtt|tcp):\/\//.test(options.url)) throw new TypeError(`simulator url: expected mqtt://host:port, got ${JSON.stringify(options.url)}`);
    this.rnd = seededRandom(options.seed ?? 42);
    this.devices = buildHome(options.counts ?? DEFAULT_HOME, this.rnd);
    this.options = {
      url: options.url,
      logger: options.logger.child({ module: 'simulator' }),
      messagesPerSecond: options.messagesPerSecond ?? 3,
      baseTopic: options.baseTopic ?? 'devices',
      qos: options.qos ?? 1,
    };
  }

  get stats(): { sent: number; commands: number } {
    return { sent: this.sent, commands: this.commands };
  }

  /**
   * Resolves with the time (performance.now()) the next command for `deviceId` that passes `test` arrives, or
   * undefined after `timeoutMs` (the demo measures a downlink with it).
   */
  nextCommand(deviceId: string, test: (attrs: Record<string, unknown>) => boolean, timeoutMs: number): Promise<number | undefined> {
    return new Promise((resolve) => {
      const waiter = (id: string, attrs: Record<string, unknown>, at: number): void => {
        if (id !== deviceId || !test(attrs)) return;
        done(at);
      };
      const done = (at: number | undefined): void => {
        clearTimeout(timer);
        this.commandWaiters.delete(waiter);
        resolve(at);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.commandWaiters.add(waiter);
    });
  }

  async start(): Promise<void> {
    const { baseTopic, qos } = this.options;
    this.client = await mqtt.connectAsync(this.options.url, { clientId: `simulator-${process.pid}`, reconnectPeriod: 1000 });
    this.client.on('message', (topic, payload) => this.onCommand(topic, payload));
    await this.client.subscribeAsync(`${baseTopic}/+/set`, { qos: 1 });
    for (const device of this.devices) {
      await this.client.publishAsync(`${baseTopic}/${device.id}/meta`, JSON.stringify(metaOf(device)), { qos, retain: true });
      await this.report(device);
    }
    const periodMs = 1000 / this.options.messagesPerSecond;
    this.timer = setInterval(() => void this.tick(), periodMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.client?.endAsync();
    this.client = undefined;
  }

  private async tick(): Promise<void> {
    const device = this.devices[Math.floor(this.rnd() * this.devices.length)];
    if (!device || !this.client?.connected) return;
    device.state = nextState(device, this.rnd);
    await this.report(device).catch((err: unknown) => this.options.logger.warn({ err }, 'report failed'));
  }

  private async report(device: SimDevice): Promise<void> {
    if (!this.client) return;
    await this.client.publishAsync(`${this.options.baseTopic}/${device.id}/state`, JSON.stringify(device.state), { qos: this.options.qos });
    this.sent += 1;
  }

  private onCommand(topic: string, payload: Buffer): void {
    const id = topic.split('/')[1];
    const device = this.devices.find((d) => d.id === id);
    if (!device) return;
    let attrs: unknown;
    try {
      attrs = JSON.parse(payload.toString('utf8'));
    } catch {
      this.options.logger.warn({ topic }, 'command is not JSON');
      return;
    }
    if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) return;
    const at = performance.now();
    const command: Record<string, unknown> = Object.fromEntries(Object.entries(attrs));
    this.commands += 1;
    for (const waiter of [...this.commandWaiters]) waiter(device.id, command, at);
    device.state = { ...device.state, ...command };
    this.options.logger.info({ device: device.id, attrs }, 'device obeyed a command');
    void this.report(device);
  }
}

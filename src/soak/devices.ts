/**
 * Real MQTT devices for the soak and the chaos tests: each device is its own mqtt.js client publishing QoS 1
 * `devices/<id>/state` = `{"counter": n}` with n rising, one state at a time (the next only after the PUBACK), and
 * records every PUBACK in an AckLog. A publish that gets no PUBACK in time, or a dead connection, makes the device
 * drop its client and connect afresh, so an unacknowledged state is never re-sent out of order after a newer one.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { AckLog } from './oracle.js';

export interface FleetOptions {
  /** Where devices connect; read on every (re)connect, so a daemon restarted on a new port is followed. */
  readonly url: () => string;
  readonly devices: number;
  readonly ack: AckLog;
  /** Pause between a PUBACK and the next publish of the same device. */
  readonly intervalMs: number;
  readonly prefix?: string;
  readonly ackTimeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export class DeviceFleet {
  readonly options: FleetOptions;
  /** States published (PUBLISH sent, acknowledged or not). */
  published = 0;
  reconnects = 0;
  #running = false;
  #loops: Array<Promise<void>> = [];
  readonly #clients = new Set<MqttClient>();
  readonly #counters = new Map<string, number>();

  constructor(options: FleetOptions) {
    if (!Number.isInteger(options.devices) || options.devices < 1) throw new TypeError(`fleet: expected devices ≥ 1, got ${options.devices}`);
    this.options = options;
  }

  deviceIds(): string[] {
    return Array.from({ length: this.options.devices }, (_, i) => `${this.options.prefix ?? 'soak'}-${i}`);
  }

  start(): void {
    this.#running = true;
    this.#loops = this.deviceIds().map((id) => this.#run(id));
  }

  /** Stops publishing; waits for each device's publish in flight to be acknowledged or given up. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    for (const c of this.#clients) c.end(true);
    this.#clients.clear();
  }

  async #connect(): Promise<MqttClient | undefined> {
    // Not connectAsync: a connection closed mid-CONNECT (daemon killed) can leave its promise unsettled forever.
    const client = mqtt.connect(this.options.url(), { reconnectPeriod: 0, connectTimeout: 2000, clean: true });
    client.on('error', () => undefined);
    const connected = new Promise<boolean>((resolve) => {
      client.once('connect', () => resolve(true));
      client.once('close', () => resolve(false));
      setTimeout(() => resolve(false), 3000).unref();
    });
    if (await connected) {
      this.#clients.add(client);
      return client;
    }
    client.end(true);
    return undefined;
  }

  async #run(id: string): Promise<void> {
    const timeout = this.options.ackTimeoutMs ?? 3000;
    while (this.#running) {
      const client = await this.#connect();
      if (client === undefined) {
        await sleep(100);
        continue;
      }
      while (this.#running && client.connected) {
        const n = (this.#counters.get(id) ?? 0) + 1;
        this.#counters.set(id, n);
        this.published += 1;
        try {
          await withTimeout(client.publishAsync(`devices/${id}/state`, JSON.stringify({ counter: n }), { qos: 1 }), timeout);
        } catch {
          break; // dead daemon or lost PUBACK: this client is dropped, never re-sends n after n + 1
        }
        this.options.ack.record(id, n);
        if (this.options.intervalMs > 0) await sleep(this.options.intervalMs);
      }
      this.#clients.delete(client);
      client.end(true);
      if (this.#running) this.reconnects += 1;
    }
  }
}

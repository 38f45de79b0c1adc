/**
 * Load generator for bench/ingest.ts, run in a worker thread so the clients do not share the broker's core:
 * `clients` mqtt.js connections each publish `perClient` state messages as fast as they can.
 */
import { randomBytes } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import mqtt, { type MqttClient } from 'mqtt';
import { z } from 'zod';

export const LoadSpecSchema = z.object({
  url: z.string(),
  clients: z.number().int().min(1),
  perClient: z.number().int().min(1),
  qos: z.union([z.literal(0), z.literal(1)]),
  /** true: every message repeats the device's previous state; false: every message changes it. */
  repeated: z.boolean(),
  devicesPerClient: z.number().int().min(1),
  /** Messages in flight per client. */
  window: z.number().int().min(1),
});
export type LoadSpec = z.infer<typeof LoadSpecSchema>;

const ControlSchema = z.union([z.object({ type: z.literal('load'), spec: LoadSpecSchema }), z.object({ type: z.literal('go') })]);

function payloads(spec: LoadSpec, client: number): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  for (let i = 0; i < spec.perClient; i += 1) {
    const device = i % spec.devicesPerClient;
    const value = spec.repeated ? 1 : i;
    out.push([
      `devices/bench-${client}-${device}/state`,
      Buffer.from(JSON.stringify({ power: value % 2 === 0 ? 'on' : 'off', brightness: value % 255, counter: value, linkquality: 87 })),
    ]);
  }
  return out;
}

/**
 * Publishes with at most `window` messages awaiting their callback (PUBACK for QoS 1, written for QoS 0), as a
 * pipelining device would; firing everything at once makes mqtt.js itself the bottleneck (a drain listener per write).
 */
function publishAll(client: MqttClient, messages: Array<[string, Buffer]>, qos: 0 | 1, window: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    const send = (): void => {
      while (next < messages.length && next - done < window) {
        const message = messages[next];
        next += 1;
        if (!message) continue;
        client.publish(message[0], message[1], { qos }, onDone);
      }
    };
    const onDone = (err?: Error): void => {
      if (err) return reject(err);
      done += 1;
      if (done === messages.length) resolve();
      else if (next - done <= window / 2) send();
    };
    send();
  });
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('ingest-load must run in a worker thread');
  let clients: MqttClient[] = [];
  let spec: LoadSpec | undefined;
  let prepared: Array<Array<[string, Buffer]>> = [];
  port.on('message', (raw: unknown) => {
    const msg = ControlSchema.parse(raw);
    if (msg.type === 'load') {
      spec = msg.spec;
      const s = msg.spec;
      prepared = Array.from({ length: s.clients }, (_, i) => payloads(s, i));
      const tag = randomBytes(3).toString('hex');
      void Promise.all(
        Array.from({ length: s.clients }, (_, i) =>
          mqtt.connectAsync(s.url, { reconnectPeriod: 0, clientId: `bench-${tag}-${i}`, clean: true }),
        ),
      ).then((cs) => {
        clients = cs;
        port.postMessage({ type: 'ready' });
      });
      return;
    }
    const s = spec;
    if (!s) throw new Error('go before load');
    void Promise.all(clients.map((c, i) => publishAll(c, prepared[i] ?? [], s.qos, s.window)))
      .then(() => Promise.all(clients.map((c) => c.endAsync())))
      .then(() => port.postMessage({ type: 'sent', at: Date.now() }));
  });
}

void main();

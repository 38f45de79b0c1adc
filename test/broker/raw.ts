/** Raw MQTT 3.1.1 packets over a real socket, for tests that need exact bytes (invalid UTF-8, empty client ids…). */
import { connect as tcpConnect, type Socket } from 'node:net';

function str(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
}

function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 0x80;
    out.push(digit);
  } while (n > 0);
  return Buffer.from(out);
}

function packet(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), remainingLength(body.length), body]);
}

export interface RawConnect {
  readonly clientId: string | Buffer;
  readonly clean?: boolean;
  readonly keepalive?: number;
  readonly username?: string | Buffer;
  readonly password?: string;
  readonly will?: { readonly topic: string | Buffer; readonly payload: string; readonly qos?: number };
}

export function connectPacket(c: RawConnect): Buffer {
  let flags = c.clean === false ? 0 : 0x02;
  if (c.will) flags |= 0x04 | ((c.will.qos ?? 0) << 3);
  if (c.username !== undefined) flags |= 0x80;
  if (c.password !== undefined) flags |= 0x40;
  const keepalive = c.keepalive ?? 60;
  const parts: Buffer[] = [str('MQTT'), Buffer.from([4, flags, keepalive >> 8, keepalive & 0xff]), str(c.clientId)];
  if (c.will) parts.push(str(c.will.topic), str(c.will.payload));
  if (c.username !== undefined) parts.push(str(c.username));
  if (c.password !== undefined) parts.push(str(c.password));
  return packet(0x10, Buffer.concat(parts));
}

export function publishPacket(topic: string | Buffer, payload: string, qos: 0 | 1 | 2 = 0, id = 1, retain = false): Buffer {
  const parts: Buffer[] = [str(topic)];
  if (qos > 0) parts.push(Buffer.from([id >> 8, id & 0xff]));
  parts.push(Buffer.from(payload));
  return packet(0x30 | (qos << 1) | (retain ? 1 : 0), Buffer.concat(parts));
}

export function subscribePacket(filters: ReadonlyArray<readonly [string | Buffer, number]>, id = 1): Buffer {
  const parts: Buffer[] = [Buffer.from([id >> 8, id & 0xff])];
  for (const [filter, qos] of filters) parts.push(str(filter), Buffer.from([qos]));
  return packet(0x82, Buffer.concat(parts));
}

export function unsubscribePacket(filters: ReadonlyArray<string | Buffer>, id = 1): Buffer {
  return packet(0xa2, Buffer.concat([Buffer.from([id >> 8, id & 0xff]), ...filters.map(str)]));
}

export interface ReceivedPacket {
  readonly type: number;
  readonly flags: number;
  readonly body: Buffer;
}

/** A raw client: what it receives, split into packets, and whether the server closed it. */
export interface RawClient {
  readonly socket: Socket;
  readonly packets: ReceivedPacket[];
  send(bytes: Buffer): void;
  /** Resolves with the first received packet of `type` (waiting up to `ms`), or undefined. */
  next(type: number, ms?: number): Promise<ReceivedPacket | undefined>;
  /** Resolves true when the server closes the connection within `ms`. */
  closed(ms?: number): Promise<boolean>;
}

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBACK = 9;
export const UNSUBACK = 11;

export function rawClient(port: number, localAddress?: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    const packets: ReceivedPacket[] = [];
    let buffered = Buffer.alloc(0);
    const waiters = new Set<() => void>();
    let isClosed = false;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        let length = 0;
        let multiplier = 1;
        let i = 1;
        for (; i < buffered.length && i <= 4; i += 1) {
          const byte = buffered[i] ?? 0;
          length += (byte & 0x7f) * multiplier;
          multiplier *= 128;
          if ((byte & 0x80) === 0) break;
        }
        if (i >= buffered.length || buffered.length < i + 1 + length) break;
        const first = buffered[0] ?? 0;
        packets.push({ type: first >> 4, flags: first & 0x0f, body: buffered.subarray(i + 1, i + 1 + length) });
        buffered = buffered.subarray(i + 1 + length);
      }
      for (const w of waiters) w();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      isClosed = true;
      for (const w of waiters) w();
    });
    socket.once('connect', () => {
      resolve({
        socket,
        packets,
        send: (bytes) => socket.write(bytes),
        next: (type, ms = 2000) =>
          new Promise((done) => {
            const check = (): boolean => {
              const found = packets.find((p) => p.type === type);
              if (found) {
                packets.splice(packets.indexOf(found), 1);
                finish(found);
                return true;
              }
              if (isClosed) finish(undefined);
              return isClosed;
            };
            const timer = setTimeout(() => finish(undefined), ms);
            const finish = (value: ReceivedPacket | undefined): void => {
              clearTimeout(timer);
              waiters.delete(waiter);
              done(value);
            };
            const waiter = (): void => void check();
            if (!check()) waiters.add(waiter);
          }),
        closed: (ms = 2000) =>
          new Promise((done) => {
            if (isClosed) return done(true);
            const timer = setTimeout(() => done(false), ms);
            socket.once('close', () => {
              clearTimeout(timer);
              done(true);
            });
          }),
      });
    });
    socket.once('error', reject);
  });
}

/** The return code of a CONNACK (§3.2.2.3), or undefined when none came. */
export async function connackCode(client: RawClient, ms = 3000): Promise<number | undefined> {
  const connack = await client.next(CONNACK, ms);
  return connack?.body[1];
}

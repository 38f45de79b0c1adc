/**
 * A TCP proxy on 127.0.0.1, port 0, between a client and a server, for network-failure tests (reused by chaos tests):
 * - `cutResponseTo(match)`: the next request whose bytes contain `match` is forwarded whole; when the server starts
 *   to answer, both connections are destroyed and no response byte reaches the client (a lost response after the
 *   server applied the request).
 * - `holdResponseTo(match)`: the response to the next matching request is withheld until `release()`.
 * - `setLatency(ms)`: every chunk, both ways, is delayed.
 * - `blackHole(true)`: accepts connections and swallows every byte, answering nothing (a dead route).
 * - `dropAll()`: destroys every open connection.
 * - `setTarget(url)`: later connections go to another server (a server restarted on a new port).
 * - `setBandwidth(bytesPerSecond)`: caps each connection's throughput, each way (0 = unlimited).
 * - `cutRequestTo(match)`: the next request containing `match` is cut mid-request: half of its bytes reach the server,
 *   then both connections are reset.
 * - `holdRequestTo(match)`: the next request containing `match` is withheld from the server until `release()`.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface HeldResponse {
  /** Resolves when the server's answer has started to arrive and is being withheld. */
  readonly held: Promise<void>;
  /** Forwards what was withheld and lets the rest through. */
  release(): void;
}

export interface TcpProxy {
  readonly url: string;
  readonly port: number;
  readonly stats: { connections: number; cut: number };
  setLatency(ms: number): void;
  setBandwidth(bytesPerSecond: number): void;
  cutRequestTo(match: string): Promise<void>;
  holdRequestTo(match: string): HeldResponse;
  /** Points new connections at another server (e.g. one restarted on a new port). */
  setTarget(url: string): void;
  blackHole(on: boolean): void;
  /** Arms a one-shot cut; resolves when it has happened. */
  cutResponseTo(match: string): Promise<void>;
  holdResponseTo(match: string): HeldResponse;
  dropAll(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
  cut: (() => void) | undefined;
  hold: { buffered: Buffer[]; onHeld: () => void; released: boolean; first: boolean } | undefined;
  holdRequest: Pair['hold'];
  /** Bandwidth cap: when each direction's link is free again (epoch ms). */
  freeAt: { up: number; down: number };
}

type Rule =
  | { kind: 'cut'; match: string; done: () => void }
  | { kind: 'hold'; match: string; ctl: NonNullable<Pair['hold']> }
  | { kind: 'cut-request'; match: string; done: () => void }
  | { kind: 'hold-request'; match: string; ctl: NonNullable<Pair['hold']> };

function newHold(): { held: Promise<void>; ctl: NonNullable<Pair['hold']> } {
  let onHeld: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    onHeld = resolve;
  });
  return { held, ctl: { buffered: [], onHeld, released: false, first: true } };
}

export async function startProxy(options: { target: string }): Promise<TcpProxy> {
  let target = new URL(options.target);
  const pairs = new Set<Pair>();
  const rules: Rule[] = [];
  const stats = { connections: 0, cut: 0 };
  let latencyMs = 0;
  let blackHoled = false;
  let bytesPerSecond = 0;

  const later = (fn: () => void, pair?: Pair, way?: 'up' | 'down', bytes = 0): void => {
    let delay = latencyMs;
    if (bytesPerSecond > 0 && pair !== undefined && way !== undefined) {
      const now = Date.now();
      const start = Math.max(now, pair.freeAt[way]);
      pair.freeAt[way] = start + (bytes * 1000) / bytesPerSecond;
      delay += Math.ceil(pair.freeAt[way] - now);
    }
    if (delay > 0) setTimeout(fn, delay);
    else fn();
  };

  const destroyPair = (pair: Pair): void => {
    pair.client.destroy();
    pair.upstream?.destroy();
    pairs.delete(pair);
  };

  const onClientData = (pair: Pair, chunk: Buffer): void => {
    if (blackHoled || pair.upstream === undefined) return;
    const text = chunk.toString('latin1');
    const index = rules.findIndex((rule) => text.includes(rule.match));
    if (index >= 0) {
      const [rule] = rules.splice(index, 1);
      if (rule?.kind === 'cut') pair.cut = rule.done;
      if (rule?.kind === 'hold') pair.hold = rule.ctl;
      if (rule?.kind === 'hold-request') pair.holdRequest = rule.ctl;
      if (rule?.kind === 'cut-request') {
        const upstream = pair.upstream;
        upstream.write(chunk.subarray(0, Math.floor(chunk.length / 2)), () => {
          stats.cut += 1;
          destroyPair(pair);
          rule.done();
        });
        return;
      }
    }
    const holdRequest = pair.holdRequest;
    if (holdRequest !== undefined && !holdRequest.released) {
      holdRequest.buffered.push(chunk);
      if (holdRequest.first) {
        holdRequest.first = false;
        holdRequest.onHeld();
      }
      return;
    }
    const upstream = pair.upstream;
    later(() => upstream.write(chunk), pair, 'up', chunk.length);
  };

  const onUpstreamData = (pair: Pair, chunk: Buffer): void => {
    if (pair.cut !== undefined) {
      const done = pair.cut;
      pair.cut = undefined;
      stats.cut += 1;
      destroyPair(pair);
      done();
      return;
    }
    const hold = pair.hold;
    if (hold !== undefined && !hold.released) {
      hold.buffered.push(chunk);
      if (hold.first) {
        hold.first = false;
        hold.onHeld();
      }
      return;
    }
    later(() => pair.client.write(chunk), pair, 'down', chunk.length);
  };

  const server: Server = createServer((client) => {
    stats.connections += 1;
    const pair: Pair = { client, upstream: undefined, cut: undefined, hold: undefined, holdRequest: undefined, freeAt: { up: 0, down: 0 } };
    pairs.add(pair);
    client.on('error', () => destroyPair(pair));
    client.on('close', () => destroyPair(pair));
    client.on('data', (chunk: Buffer) => onClientData(pair, chunk));
    if (blackHoled) return;
    const upstream = connect(Number(target.port), target.hostname);
    pair.upstream = upstream;
    upstream.on('data', (chunk: Buffer) => onUpstreamData(pair, chunk));
    upstream.on('error', () => destroyPair(pair));
    upstream.on('close', () => later(() => destroyPair(pair)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  /** Arms a one-shot hold of the next matching request (to the server) or of its response (to the client). */
  const hold = (match: string, kind: 'hold' | 'hold-request'): HeldResponse => {
    const { held, ctl } = newHold();
    rules.push({ kind, match, ctl });
    const release = (): void => {
      ctl.released = true;
      for (const pair of pairs) {
        if (kind === 'hold' && pair.hold === ctl) for (const chunk of ctl.buffered.splice(0)) pair.client.write(chunk);
        if (kind === 'hold-request' && pair.holdRequest === ctl) for (const chunk of ctl.buffered.splice(0)) pair.upstream?.write(chunk);
      }
    };
    return { held, release };
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    setTarget: (url) => {
      target = new URL(url);
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    setBandwidth: (rate) => {
      bytesPerSecond = rate;
    },
    cutRequestTo: (match) => new Promise<void>((resolve) => rules.push({ kind: 'cut-request', match, done: resolve })),
    holdRequestTo: (match) => hold(match, 'hold-request'),
    blackHole: (on) => {
      blackHoled = on;
    },
    cutResponseTo: (match) => new Promise<void>((resolve) => rules.push({ kind: 'cut', match, done: resolve })),
    holdResponseTo: (match) => hold(match, 'hold'),
    dropAll: () => {
      for (const pair of [...pairs]) destroyPair(pair);
    },
    close: async () => {
      for (const pair of [...pairs]) destroyPair(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

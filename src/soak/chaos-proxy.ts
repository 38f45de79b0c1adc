/**
 * The soak's network between gateway and server: a TCP relay on 127.0.0.1 whose behaviour is one `NetFault` at a
 * time — clean, latency, a bandwidth cap, a black hole (bytes swallowed, nothing answered), or resets (each
 * connection is cut after a random number of bytes, mid-request or mid-response). `resetAll()` cuts every open
 * connection now; `setTarget()` follows a server restarted on a new port.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type NetFault =
  | { readonly kind: 'clean' }
  | { readonly kind: 'latency'; readonly ms: number }
  | { readonly kind: 'bandwidth'; readonly bytesPerSecond: number }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'resets'; readonly maxBytes: number };

export interface ChaosProxy {
  readonly url: string;
  fault: NetFault;
  setTarget(url: string): void;
  resetAll(): void;
  close(): Promise<void>;
}

interface Link {
  readonly a: Socket;
  readonly b: Socket;
  /** Bytes left before this link is cut (resets fault), or Infinity. */
  budget: number;
  freeAt: number;
}

export async function startChaosProxy(target: string): Promise<ChaosProxy> {
  let to = new URL(target);
  const links = new Set<Link>();
  const state: { fault: NetFault } = { fault: { kind: 'clean' } };
  const cut = (link: Link): void => {
    link.a.destroy();
    link.b.destroy();
    links.delete(link);
  };
  const relay = (link: Link, from: Socket, into: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      const f = state.fault;
      if (f.kind === 'blackhole') return;
      if (f.kind === 'resets') {
        link.budget -= chunk.length;
        if (link.budget <= 0) {
          into.write(chunk.subarray(0, Math.max(0, chunk.length + link.budget)), () => cut(link));
          return;
        }
      }
      let delay = f.kind === 'latency' ? f.ms : 0;
      if (f.kind === 'bandwidth') {
        const now = Date.now();
        link.freeAt = Math.max(now, link.freeAt) + (chunk.length * 1000) / f.bytesPerSecond;
        delay = Math.ceil(link.freeAt - now);
      }
      if (delay > 0) setTimeout(() => into.write(chunk), delay);
      else into.write(chunk);
    });
    from.on('error', () => cut(link));
    from.on('close', () => cut(link));
  };
  const server = createServer((a) => {
    const b = connect(Number(to.port), to.hostname);
    const f = state.fault;
    const link: Link = { a, b, budget: f.kind === 'resets' ? 1 + Math.floor(Math.random() * f.maxBytes) : Infinity, freeAt: 0 };
    links.add(link);
    relay(link, a, b);
    relay(link, b, a);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get fault() {
      return state.fault;
    },
    set fault(f: NetFault) {
      state.fault = f;
    },
    setTarget: (url) => {
      to = new URL(url);
    },
    resetAll: () => {
      for (const link of [...links]) cut(link);
    },
    close: async () => {
      for (const link of [...links]) cut(link);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

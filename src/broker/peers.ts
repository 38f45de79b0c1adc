/**
 * Who is on the other end of a connection, as the limits see it. Every loopback address (127.0.0.0/8, ::1) is one
 * host, "loopback": a local process can bind any of 16 million 127.x addresses, so counting them apart would let one
 * process look like millions of hosts. IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
import type { Client } from 'aedes';

/** 127.0.0.0/8, ::1 and their IPv4-mapped IPv6 forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4 === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** The key per-address limits count by: "loopback", the IPv4 address, the IPv6 address, or "unknown". */
export function hostKey(address: string | undefined): string {
  if (address === undefined || address.length === 0) return 'unknown';
  if (isLoopbackAddress(address)) return 'loopback';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

interface SocketLike {
  readonly remoteAddress?: unknown;
}

/** The peer address of an aedes client: the socket's, or for WebSocket the HTTP request's (no proxy headers). */
export function remoteAddressOf(client: Client | null): string | undefined {
  if (!client) return undefined;
  const conn = client.conn;
  if ('remoteAddress' in conn && typeof conn.remoteAddress === 'string') return conn.remoteAddress;
  const fromReq: SocketLike | undefined = client.req?.socket;
  return typeof fromReq?.remoteAddress === 'string' ? fromReq.remoteAddress : undefined;
}

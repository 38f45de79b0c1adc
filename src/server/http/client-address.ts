/**
 * The address a request comes from, for the per-address rate limit and for logs. It is the socket's peer, unless that
 * peer is one of the configured trusted proxies (`trustedProxies`: addresses or CIDR ranges): then the
 * `X-Forwarded-For` chain is read from the right, skipping trusted proxies, and the first address that is not one is
 * the client. Entries left of it were written by the client and are never read, so a client cannot choose its own
 * bucket. Without trusted proxies `X-Forwarded-For` is ignored.
 */
import { BlockList, isIP } from 'node:net';

/** One `trustedProxies` entry: an IPv4/IPv6 address or a CIDR range; undefined when it is neither. */
export function parseProxyEntry(entry: string): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  if (prefixText === undefined) return { address, prefix: undefined, family };
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  return prefix <= (version === 4 ? 32 : 128) ? { address, prefix, family } : undefined;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`, so one client has one key whichever socket family carried it. */
function normalise(address: string): string {
  const lower = address.trim().toLowerCase();
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

export class ClientAddresses {
  private readonly trusted = new BlockList();
  private readonly any: boolean;

  constructor(trustedProxies: readonly string[]) {
    for (const entry of trustedProxies) {
      const parsed = parseProxyEntry(entry);
      if (parsed === undefined) throw new RangeError(`trustedProxies: expected an IP address or CIDR range, given ${JSON.stringify(entry)}`);
      if (parsed.prefix === undefined) this.trusted.addAddress(normalise(parsed.address), parsed.family);
      else this.trusted.addSubnet(normalise(parsed.address), parsed.prefix, parsed.family);
    }
    this.any = trustedProxies.length > 0;
  }

  private isTrusted(address: string): boolean {
    const version = isIP(address);
    return version !== 0 && this.trusted.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }

  /** The client's address for a request whose socket peer is `peer` and whose X-Forwarded-For is `forwarded`. */
  of(peer: string | undefined, forwarded: string | string[] | undefined): string {
    const socket = normalise(peer ?? '');
    if (!this.any || forwarded === undefined || !this.isTrusted(socket)) return socket || 'unknown';
    const hops = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).split(',');
    let client = socket;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalise(hops[i] ?? '');
      if (isIP(hop) === 0) break; // not written by a trusted proxy: keep the last trusted view
      client = hop;
      if (!this.isTrusted(hop)) break;
    }
    return client;
  }
}

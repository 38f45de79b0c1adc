/**
 * Who owns each client id's session (docs/security.md §Sessions and client ids: without it, anyone could connect with
 * a device's client id and clean session 0, kick the device off, and receive the QoS 1 messages queued for it).
 *
 * MQTT 3.1.1 §3.1.2.4 keys a session by client id alone, and §3.1.4 lets a new connection with that id take over
 * (MQTT-3.1.4-2). Here a session also remembers the identity that created it: a username, or anonymous from this
 * machine, or anonymous from the network. A CONNECT by another identity with that client id — clean or not, while
 * the owner is connected or while its session is stored — is refused (CONNACK 5) and the owner is left alone. The
 * owner itself may always take over (a device reconnecting over a half-open connection).
 *
 * A session exists while a connection with that id is open (or being accepted), and after a clean-session-0
 * connection until a clean-session-1 connection of the same identity ends it (MQTT-3.1.2-6) — the life of aedes's
 * in-memory session, so the ownership map lives exactly as long (it is lost on restart, as the sessions are).
 */

interface Session {
  owner: string;
  /** Connections holding the id: authenticated and not yet closed. */
  live: number;
  /** A clean-session-0 connection left (or will leave) state behind. */
  stored: boolean;
}

export type SessionClaim = { readonly ok: true; readonly release: () => void } | { readonly ok: false };

export class SessionOwners {
  readonly #sessions = new Map<string, Session>();

  /**
   * Takes `clientId` for `owner` (a connection authenticated with clean session `clean`), or refuses when another
   * identity's session holds it. Call `release` when that connection closes.
   */
  claim(clientId: string, owner: string, clean: boolean): SessionClaim {
    const session = this.#sessions.get(clientId);
    if (session && session.owner !== owner && (session.live > 0 || session.stored)) return { ok: false };
    const held: Session = session && session.owner === owner ? session : { owner, live: 0, stored: false };
    held.live += 1;
    // A clean session discards any previous one (MQTT-3.1.2-6); a persistent one outlives this connection.
    held.stored = !clean;
    this.#sessions.set(clientId, held);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        held.live -= 1;
        if (held.live === 0 && !held.stored && this.#sessions.get(clientId) === held) this.#sessions.delete(clientId);
      },
    };
  }

  /** The identity owning `clientId`'s session, if there is one. */
  ownerOf(clientId: string): string | undefined {
    const session = this.#sessions.get(clientId);
    return session && (session.live > 0 || session.stored) ? session.owner : undefined;
  }

  /** Client ids with a session (open or stored). */
  get size(): number {
    return this.#sessions.size;
  }
}

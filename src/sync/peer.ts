/**
 * The server the gateway syncs with, as far as the gateway knows it (docs/protocol.md §Compatibility): the profile
 * set in the config, or on `auto` the one decided from the server's answers — remembered in the store
 * (`server_profile`) so a restart does not probe again — and what is wrong with the server, in words, by topic, each
 * logged once when it appears and shown by `status`. The rules themselves are pure (peer-profile.ts).
 */
import type { Logger } from '../log.js';
import type { ServerProfileState, SyncState } from '../store/index.js';
import {
  houseIdOf,
  INBETWEENIES_TRAITS,
  traitsOf,
  type PeerTraits,
  type ServerProfile,
  type ServerProfileSetting,
} from './peer-profile.js';
import type { TransportPeer } from './transport.js';
import type { WireChange } from '../protocol/index.js';

export interface ServerPeerOptions {
  readonly setting: ServerProfileSetting;
  /** Static bearer token (server.token), for a server without a token endpoint. */
  readonly token: string | undefined;
  /** server.houseId: the FunkyGibbon house pushes go to, over the one learnt from pulled rooms. */
  readonly houseId: string | undefined;
  readonly state: SyncState;
  readonly logger: Logger;
  readonly now: () => number;
}

export type DecidedBy = ServerProfileState['decided_by'];

/** Problems by topic: the words `status` shows. */
export const PROBLEMS = {
  unsigned: 'the server does not sign its responses: they are accepted unsigned (profile funkygibbon-v1)',
  entity_state: 'entity_state changes are kept pending: FunkyGibbon v1 cannot store entity states',
  deletes: 'deletes are kept pending: FunkyGibbon v1 does not apply deletes',
  gzip: 'the server refused gzip request bodies: sending plain bodies',
} as const;

export class ServerPeer implements TransportPeer {
  readonly #o: ServerPeerOptions;
  readonly #log: Logger;
  #state: ServerProfileState | undefined;

  constructor(options: ServerPeerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ module: 'sync-peer' });
    const stored = options.state.get('server_profile');
    // A profile set in the config wins over a remembered one; on auto the remembered one stands.
    if (options.setting !== 'auto' && stored?.profile !== options.setting) {
      this.#state = this.#fresh(options.setting, 'config', stored);
      this.#save();
    } else {
      this.#state = stored;
    }
    if (this.#state !== undefined) this.#announce('in use');
  }

  /** The profile's traits, or undefined while `auto` has not decided. */
  get traits(): PeerTraits | undefined {
    return this.#state === undefined ? undefined : traitsOf(this.#state.profile);
  }

  /** The traits to act on now: this protocol's until `auto` decided otherwise. */
  effective(): PeerTraits {
    return this.traits ?? INBETWEENIES_TRAITS;
  }

  get setting(): ServerProfileSetting {
    return this.#o.setting;
  }

  get token(): string | undefined {
    return this.#o.token;
  }

  /** Records the profile `auto` found (or a fallback to another shape), remembers it and says so. */
  decide(profile: ServerProfile, by: DecidedBy): void {
    if (this.#state?.profile === profile) return;
    this.#state = this.#fresh(profile, by, this.#state);
    this.#announce(by === 'fallback' ? 'switched to (the other request shape works)' : 'decided');
    this.#save();
  }

  #fresh(profile: ServerProfile, by: DecidedBy, prior: ServerProfileState | undefined): ServerProfileState {
    const problems: Record<string, string> = {};
    const traits = traitsOf(profile);
    if (!traits.signsResponses) problems.unsigned = PROBLEMS.unsigned;
    if (!traits.storable.includes('entity_state')) problems.entity_state = PROBLEMS.entity_state;
    if (!traits.appliesDeletes) problems.deletes = PROBLEMS.deletes;
    const gzipRefused = prior?.gzip_refused === true || this.#gzipRefusedEarly;
    if (gzipRefused) problems.gzip = PROBLEMS.gzip;
    return { profile, decided_by: by, decided_at: this.#o.now(), gzip_refused: gzipRefused, house_id: prior?.house_id ?? null, problems };
  }

  #announce(what: string): void {
    const state = this.#state;
    if (state === undefined) return;
    const unsigned = !traitsOf(state.profile).signsResponses;
    const line = `server profile ${state.profile} ${what}${unsigned ? ': unsigned responses are accepted' : ''}`;
    this.#log[unsigned ? 'warn' : 'info']({ profile: state.profile, decidedBy: state.decided_by, problems: Object.values(state.problems) }, line);
  }

  // ---- TransportPeer -------------------------------------------------------------------------------------------
  gzip(): boolean {
    return this.effective().gzipRequests && this.#state?.gzip_refused !== true && !this.#gzipRefusedEarly;
  }

  acceptUnsigned(): boolean {
    return !this.effective().signsResponses;
  }

  gzipRefused(status: number): void {
    this.#gzipRefusedEarly = true; // before `auto` decided: kept for the profile it decides (#fresh)
    if (this.#state === undefined) return;
    this.#state = { ...this.#state, gzip_refused: true };
    this.problem('gzip', `${PROBLEMS.gzip} (HTTP ${status})`);
  }

  #gzipRefusedEarly = false;

  // ---- what the server is missing, in words ----------------------------------------------------------------------
  /** Records a problem under `topic`; logged when it appears or its words change, not on every cycle. */
  problem(topic: string, words: string): void {
    const state = this.#state;
    if (state === undefined || state.problems[topic] === words) return;
    this.#state = { ...state, problems: { ...state.problems, [topic]: words } };
    this.#log.warn({ topic }, words);
    this.#save();
  }

  /** Clears the problem under `topic` (it went away). */
  solved(topic: string): void {
    const state = this.#state;
    if (state === undefined || state.problems[topic] === undefined) return;
    const { [topic]: _gone, ...rest } = state.problems;
    this.#state = { ...state, problems: rest };
    this.#log.info({ topic }, 'server problem solved');
    this.#save();
  }

  problems(): readonly string[] {
    return Object.values(this.#state?.problems ?? {});
  }

  // ---- FunkyGibbon's house -----------------------------------------------------------------------------------------
  houseId(): string | undefined {
    return this.#o.houseId ?? this.#state?.house_id ?? undefined;
  }

  /** Remembers the house the pulled rooms and devices belong to (the first one named). */
  learnHouse(changes: readonly WireChange[]): void {
    const state = this.#state;
    if (state === undefined || !this.effective().needsHouseId || state.house_id !== null) return;
    const house = houseIdOf(changes);
    if (house === undefined) return;
    this.#state = { ...state, house_id: house };
    this.#log.info({ houseId: house }, 'pushed rooms and devices go to the house the server named');
    this.#save();
  }

  #save(): void {
    if (this.#state !== undefined) void this.#o.state.set('server_profile', this.#state);
  }
}

/**
 * systemd notification protocol (sd_notify(3)): READY=1, WATCHDOG=1, STATUS=…, STOPPING=1 sent to $NOTIFY_SOCKET.
 * Backends, in order (docs/operations.md §systemd): the `sd-notify` native module (libsystemd's sd_notify) when it
 * loads, else the `systemd-notify` binary. Node has no unix datagram sockets, hence no pure-JS backend. Without
 * $NOTIFY_SOCKET (not under systemd, tests) the notifier does nothing.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Logger } from '../log.js';

export type NotifyBackendName = 'native' | 'binary' | 'none';

/** Sends one sd_notify message: newline-separated VAR=VALUE assignments. */
export interface NotifyBackend {
  readonly name: NotifyBackendName;
  send(assignments: readonly string[]): Promise<void>;
}

interface NativeSdNotify {
  sendState(state: string): void;
}

function isNativeSdNotify(value: unknown): value is NativeSdNotify {
  return typeof value === 'object' && value !== null && 'sendState' in value && typeof value.sendState === 'function';
}

/** The `sd-notify` module (an optional dependency: it needs libsystemd-dev to build), or undefined. */
export function loadNativeSdNotify(): NativeSdNotify | undefined {
  try {
    const mod: unknown = createRequire(import.meta.url)('sd-notify');
    return isNativeSdNotify(mod) ? mod : undefined;
  } catch {
    return undefined;
  }
}

function nativeBackend(native: NativeSdNotify): NotifyBackend {
  return {
    name: 'native',
    send: (assignments) => {
      native.sendState(assignments.join('\n'));
      return Promise.resolve();
    },
  };
}

/**
 * `systemd-notify VAR=VALUE…`. The message comes from a child process, so the unit needs NotifyAccess=all (ours have
 * it), and systemd < 254 may fail to attribute a message whose sender already exited: prefer the native module.
 */
export function binaryBackend(options: { env: NodeJS.ProcessEnv; binary?: string; pid?: number }): NotifyBackend {
  const binary = options.binary ?? 'systemd-notify';
  const pid = options.pid ?? process.pid;
  return {
    name: 'binary',
    send: (assignments) =>
      new Promise((resolve, reject) => {
        const args = assignments.some((a) => a === 'READY=1') ? [`--pid=${pid}`, ...assignments] : [...assignments];
        execFile(binary, args, { env: options.env, timeout: 5000 }, (err, _stdout, stderr) => {
          if (err) reject(new Error(`${binary} failed: ${stderr.trim() || err.message}`));
          else resolve();
        });
      }),
  };
}

export interface NotifierOptions {
  readonly logger: Logger;
  /** Where NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and INBETWEENIES_SD_NOTIFY are read (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** Forces a backend (tests); otherwise INBETWEENIES_SD_NOTIFY=native|binary|auto, default auto. */
  readonly backend?: NotifyBackend;
  readonly pid?: number;
}

/** Picks the backend: none without NOTIFY_SOCKET; native if it loads (unless forced to binary); else the binary. */
export function chooseBackend(env: NodeJS.ProcessEnv, pid: number): NotifyBackend {
  if (!env.NOTIFY_SOCKET) return { name: 'none', send: () => Promise.resolve() };
  const wanted = env.INBETWEENIES_SD_NOTIFY ?? 'auto';
  // libsystemd reads the process environment itself: the native module only serves that environment's socket.
  if (wanted !== 'binary' && env.NOTIFY_SOCKET === process.env.NOTIFY_SOCKET) {
    const native = loadNativeSdNotify();
    if (native) return nativeBackend(native);
  }
  return binaryBackend({ env, pid });
}

/**
 * What the daemon tells systemd. Messages are serialised (one at a time, in order) and a failure is logged once per
 * kind, never thrown: a broken notify socket must not take the gateway down.
 */
export class SystemdNotifier {
  readonly backend: NotifyBackend;
  /** Watchdog period systemd expects (WATCHDOG_USEC), ms; null when the watchdog is off for this process. */
  readonly watchdogMs: number | null;
  readonly #log: Logger;
  #chain: Promise<void> = Promise.resolve();
  #lastStatus: string | undefined;
  readonly #failedKinds = new Set<string>();

  constructor(options: NotifierOptions) {
    const env = options.env ?? process.env;
    const pid = options.pid ?? process.pid;
    this.#log = options.logger.child({ module: 'sd-notify' });
    this.backend = options.backend ?? chooseBackend(env, pid);
    this.watchdogMs = this.backend.name === 'none' ? null : watchdogPeriodMs(env, pid);
  }

  get enabled(): boolean {
    return this.backend.name !== 'none';
  }

  ready(status: string): Promise<void> {
    this.#lastStatus = status;
    return this.#send('ready', ['READY=1', `STATUS=${oneLine(status)}`]);
  }

  watchdog(): Promise<void> {
    return this.#send('watchdog', ['WATCHDOG=1']);
  }

  /** Sends STATUS= only when the line changed. */
  status(status: string): Promise<void> {
    if (status === this.#lastStatus) return this.#chain;
    this.#lastStatus = status;
    return this.#send('status', [`STATUS=${oneLine(status)}`]);
  }

  stopping(status = 'stopping'): Promise<void> {
    return this.#send('stopping', ['STOPPING=1', `STATUS=${oneLine(status)}`]);
  }

  /** Resolves once every message queued so far has been handed to systemd. */
  flush(): Promise<void> {
    return this.#chain;
  }

  #send(kind: string, assignments: string[]): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    this.#chain = this.#chain.then(() =>
      this.backend.send(assignments).then(
        () => {
          this.#failedKinds.delete(kind);
        },
        (err: unknown) => {
          if (!this.#failedKinds.has(kind)) this.#log.warn({ err, kind, backend: this.backend.name }, 'sd_notify failed');
          this.#failedKinds.add(kind);
        },
      ),
    );
    return this.#chain;
  }
}

/** sd_watchdog_enabled(3): WATCHDOG_USEC, for this process only when WATCHDOG_PID is absent or ours. */
export function watchdogPeriodMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  return usec / 1000;
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 400);
}

/**
 * The supervisor (docs/operations.md §systemd): the last component the daemon starts and the first it stops. Start:
 * READY=1 with a status line (the broker listens and the store is open), then a timer that ticks the health monitor
 * and, while everything a restart could fix is fine, feeds systemd's watchdog (WATCHDOG=1) and keeps STATUS= current.
 * Stop: STOPPING=1, timer off, histogram off, and every queued notification handed to systemd.
 */
import type { Logger } from '../log.js';
import type { HealthMonitor, HealthReport } from './health.js';
import type { Component } from './lifecycle.js';
import type { SystemdNotifier } from './notify.js';

export interface SupervisorOptions {
  readonly health: HealthMonitor;
  readonly notifier: SystemdNotifier;
  readonly logger: Logger;
  /** How often health is ticked (config `health.intervalMs`); never slower than half the watchdog period. */
  readonly intervalMs: number;
  /** The STATUS= line for a report (devices, pending, last sync, mode, clients, reasons). */
  readonly statusLine: (report: HealthReport) => string;
  readonly httpUrl: () => string | null;
}

export class Supervisor implements Component {
  readonly name = 'supervisor';
  readonly #o: SupervisorOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#log = options.logger.child({ module: 'ops' });
  }

  async start(): Promise<void> {
    const { health, notifier } = this.#o;
    await notifier.ready(this.#o.statusLine(health.tick()));
    const wd = notifier.watchdogMs;
    // sd_watchdog_enabled(3): notify at least twice per period; never slower than the health interval.
    const every = Math.max(100, Math.min(this.#o.intervalMs, wd === null ? Infinity : wd / 2));
    this.#timer = setInterval(() => this.#tick(), every);
    this.#timer.unref();
    this.#log.info({ notify: notifier.backend.name, watchdogMs: wd, healthEveryMs: every, http: this.#o.httpUrl() }, 'operations started');
  }

  #tick(): void {
    let report: HealthReport;
    try {
      report = this.#o.health.tick();
    } catch (err) {
      this.#log.error({ err }, 'health check failed');
      return;
    }
    if (report.watchdogOk) void this.#o.notifier.watchdog();
    else this.#log.warn({ reasons: report.reasons }, 'unhealthy: withholding the systemd watchdog');
    void this.#o.notifier.status(this.#o.statusLine(report));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    void this.#o.notifier.stopping(`stopping: ${this.#o.statusLine(this.#o.health.current())}`);
    this.#o.health.stop();
    await this.#o.notifier.flush();
  }
}

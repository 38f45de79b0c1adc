/**
 * Live wake-ups across instances (docs/protocol.md §Live waits, §Several instances): every push that wrote something
 * sends `NOTIFY ib_changes` inside its transaction (pg/push.ts), so the notification is delivered to every listening
 * instance when, and only if, the push commits. Each instance LISTENs on one dedicated connection and hands the
 * events of other instances to its in-process notifier, which its held waits subscribe to; its own pushes publish
 * in-process directly (their notifications come back and are skipped by instance id).
 *
 * A lost LISTEN connection is re-opened with backoff; after a reconnect every home with a held wait is woken once,
 * since a notification may have been missed meanwhile (a wait that finds an empty delta goes on holding).
 */
import type pg from 'pg';
import { z } from 'zod';
import type { Logger } from '../../log.js';
import { InProcessChangeNotifier, type ChangeEvent, type ChangeListener, type ChangeNotifier } from '../live/notifier.js';
import { createPgClient } from './connect.js';

export const CHANGES_CHANNEL = 'ib_changes';

const PayloadSchema = z.object({ h: z.string(), o: z.string(), s: z.number().int(), i: z.string() });

export interface PgChangeNotifierOptions {
  readonly url: string;
  readonly instanceId: string;
  readonly logger: Logger;
  /** First and longest delay before re-opening a lost LISTEN connection (ms). */
  readonly retryMs?: readonly [number, number];
}

export class PgChangeNotifier implements ChangeNotifier {
  private readonly local = new InProcessChangeNotifier();
  private readonly homes = new Map<string, number>();
  private readonly log: Logger;
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;
  private delayMs: number;
  /** Notifications received from other instances (tests, metrics). */
  received = 0;
  reconnects = 0;

  constructor(private readonly options: PgChangeNotifierOptions) {
    this.log = options.logger.child({ module: 'pg-notify' });
    this.delayMs = options.retryMs?.[0] ?? 250;
  }

  /** Opens the LISTEN connection; resolves once it listens (rejects when the first attempt fails). */
  async start(): Promise<void> {
    await this.connect();
  }

  subscribe(homeId: string, listener: ChangeListener): () => void {
    this.homes.set(homeId, (this.homes.get(homeId) ?? 0) + 1);
    const unsubscribe = this.local.subscribe(homeId, listener);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      unsubscribe();
      const n = (this.homes.get(homeId) ?? 1) - 1;
      if (n <= 0) this.homes.delete(homeId);
      else this.homes.set(homeId, n);
    };
  }

  /** This instance's own commit: its waits wake now (the other instances hear the NOTIFY sent in the transaction). */
  publish(event: ChangeEvent): void {
    this.local.publish(event);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = createPgClient({ url: this.options.url, applicationName: 'inbetweenies-server-listen' });
    client.on('notification', (msg) => this.onNotification(msg.channel, msg.payload));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, undefined));
    await client.connect();
    await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
  }

  private onNotification(channel: string, payload: string | undefined): void {
    if (channel !== CHANGES_CHANNEL || payload === undefined) return;
    let parsed: z.infer<typeof PayloadSchema>;
    try {
      parsed = PayloadSchema.parse(JSON.parse(payload));
    } catch {
      this.log.warn('ignored a malformed change notification');
      return;
    }
    if (parsed.i === this.options.instanceId) return;
    this.received += 1;
    this.local.publish({ homeId: parsed.h, originClientId: parsed.o, seq: parsed.s });
  }

  private lost(client: pg.Client, err: Error | undefined): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    this.log.warn({ err }, 'LISTEN connection lost: reconnecting');
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retry) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(delay * 2, this.options.retryMs?.[1] ?? 5_000);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.connect().then(
        () => {
          this.reconnects += 1;
          this.delayMs = this.options.retryMs?.[0] ?? 250;
          this.log.info('LISTEN connection restored');
          this.wakeAll();
        },
        (err: unknown) => {
          this.log.warn({ err }, 'LISTEN reconnect failed');
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.retry.unref();
  }

  /** Wakes every held wait of this instance once (a notification may have been missed while disconnected). */
  private wakeAll(): void {
    for (const homeId of [...this.homes.keys()]) this.local.publish({ homeId, originClientId: '', seq: 0 });
  }
}

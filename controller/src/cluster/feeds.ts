import type { CleanRecord } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { RolloutEvent, RolloutStore } from '../rollouts/rollout-store.js';
import type { TelemetryLog } from '../store/telemetry-log.js';

/**
 * What other replicas wrote, handed to this replica's listeners (issue "several replicas"): the rollout events for
 * server-sent events, the clean telemetry for the HTTP stream. Both are read "after the last id seen"; ids increase in
 * commit order without gaps on both databases, so nothing is skipped, and each item is handed on once.
 */
export class Feed<T extends { id: number }> {
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private newest = 0;

  constructor(
    private readonly o: {
      name: string;
      /** Items after an id, in id order (at most a page). */
      read: (after: number) => Promise<T[]>;
      /** The highest id stored (where to start, and the lag). */
      head: () => Promise<number>;
      /** Whether anyone listens now (with no one, the feed only keeps up with the head). */
      wanted: () => boolean;
      deliver: (items: T[]) => void;
      everyMs: number;
      log: Logger;
    },
  ) {}

  /** Starts from the head: listeners get what is written from now on (they read what came before themselves). */
  async start(): Promise<void> {
    this.last = await this.o.head();
    this.newest = this.last;
    this.timer = setInterval(() => void this.poll(), this.o.everyMs);
  }

  /** Reads what is new now (also called right after this replica wrote something). */
  poll(): Promise<void> {
    if (this.polling !== undefined) {
      this.again = true;
      return this.polling;
    }
    this.polling = this.drain()
      .catch((err) => this.o.log.warn({ err: (err as Error).message, feed: this.o.name }, 'feed read failed'))
      .finally(() => {
        this.polling = undefined;
        if (this.again) {
          this.again = false;
          void this.poll();
        }
      });
    return this.polling;
  }

  private async drain(): Promise<void> {
    this.newest = await this.o.head();
    if (!this.o.wanted()) {
      this.last = this.newest;
      return;
    }
    for (;;) {
      const items = await this.o.read(this.last);
      if (items.length === 0) return;
      this.last = items.at(-1)!.id;
      this.o.deliver(items);
    }
  }

  /** Items written but not handed on yet (as of the last poll). */
  get lag(): number {
    return Math.max(0, this.newest - this.last);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function eventFeed(store: RolloutStore, deliver: (e: RolloutEvent) => void, wanted: () => boolean, log: Logger) {
  return new Feed<RolloutEvent>({
    name: 'events',
    read: (after) => store.events({ after, limit: 1000 }),
    head: () => store.lastEventId(),
    wanted,
    deliver: (items) => {
      for (const e of items) deliver(e);
    },
    everyMs: 250,
    log,
  });
}

export function telemetryFeed(
  log_: TelemetryLog,
  deliver: (records: CleanRecord[]) => void,
  wanted: () => boolean,
  log: Logger,
) {
  return new Feed<CleanRecord & { id: number }>({
    name: 'telemetry',
    read: async (after) =>
      (await log_.read({ after, limit: 5000 })).map((r) => ({
        id: r.cursor,
        cursor: r.cursor,
        device: r.device,
        receivedAt: r.receivedAt,
        record: JSON.parse(r.record),
      })),
    head: async () => (await log_.read({ after: 0, limit: 1, pick: 'newest' }))[0]?.cursor ?? 0,
    wanted,
    deliver: (items) => deliver(items.map(({ id: _id, ...r }) => r)),
    everyMs: 200,
    log,
  });
}

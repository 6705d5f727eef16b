import type { Logger } from 'pino';
import type { RolloutEvent } from './rollout-store.js';

/**
 * Rollout events POSTed as JSON to operator-configured URLs, in order per URL, each retried a few times with
 * back-off; a receiver that stays down loses events from its queue (the API's event list keeps them all).
 */
export class Webhooks {
  private queues = new Map<string, RolloutEvent[]>();
  private busy = new Set<string>();

  constructor(
    private readonly o: {
      urls: readonly string[];
      log: Logger;
      attempts?: number;
      backoffMs?: number;
      maxQueue?: number;
    },
  ) {}

  send(e: RolloutEvent): void {
    for (const url of this.o.urls) {
      const q = this.queues.get(url) ?? [];
      this.queues.set(url, q);
      q.push(e);
      if (q.length > (this.o.maxQueue ?? 10_000)) q.shift();
      void this.drain(url);
    }
  }

  private async drain(url: string): Promise<void> {
    if (this.busy.has(url)) return;
    this.busy.add(url);
    const q = this.queues.get(url)!;
    try {
      while (q.length > 0) {
        const e = q[0]!;
        for (let attempt = 1; ; attempt++) {
          try {
            const res = await fetch(url, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-fleetwave-event': e.kind },
              body: JSON.stringify(e),
              signal: AbortSignal.timeout(5000),
            });
            if (res.ok) break;
            throw new Error(`HTTP ${res.status}`);
          } catch (err) {
            if (attempt >= (this.o.attempts ?? 3)) {
              this.o.log.warn({ url, event: e.id, err: (err as Error).message }, 'webhook delivery failed; dropped');
              break;
            }
            await new Promise((r) => setTimeout(r, (this.o.backoffMs ?? 500) * attempt));
          }
        }
        q.shift();
      }
    } finally {
      this.busy.delete(url);
    }
  }
}

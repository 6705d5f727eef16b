import type { CleanRecord } from '@fleetwave/shared';

type Listener = (records: readonly CleanRecord[]) => void;

/** Fan-out of clean records to live HTTP streams (in process). The store is the source of truth for catch-up. */
export class TelemetryHub {
  private readonly listeners = new Set<Listener>();

  publish(records: readonly CleanRecord[]): void {
    for (const l of this.listeners) l(records);
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get size(): number {
    return this.listeners.size;
  }
}

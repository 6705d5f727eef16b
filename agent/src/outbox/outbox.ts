import { type ErrorCode, type FilterRule, FilterRules, FleetwaveError, parseWith } from '@fleetwave/shared';
import { FilterEngine } from '../filters/engine.js';
import type { Reading } from '../reading.js';
import type { StreamRoute } from '../streams.js';
import { batchPayload, lossChanges, readingRow } from './policy.js';
import type { OutboxBatch, OutboxCounters, OutboxRow, OutboxStore } from './store.js';

export interface OutboxOptions {
  device: string;
  capBytes: number;
  fullPolicy: 'drop-oldest' | 'refuse';
  /** Readings arriving within this window share one transaction (group commit). */
  commitWindowMs: number;
  /** A group is committed at once when it reaches this many readings. */
  maxGroup?: number;
  batchMaxRecords: number;
  batchMaxBytes: number;
  compression: 'none' | 'gzip';
  now: () => number;
  /** Called after every commit that added rows (the uplink pumps on it). */
  onCommitted?: () => void;
  /** Filter rules from the config file; rules applied from the cloud (persisted) take precedence. */
  filters?: readonly FilterRule[];
}

/** The filter rules and desired-config version in force, persisted with the outbox. */
export interface AppliedFilters {
  version: number;
  rules: readonly FilterRule[];
  /** The other settings of that desired-config version (absent: the config file's). */
  tunables?: { backlogIntervalMs?: number; batchMaxRecords?: number; healthIntervalMs?: number };
}

export type Committed = (err?: FleetwaveError) => void;

export interface OutboxStatus {
  depth: number;
  bytes: number;
  oldestAgeMs: number;
  batches: number;
  lastSeq: number;
  dropped: { cap: number; ttl: number };
  refused: Record<string, number>;
  accepted: number;
  filtered: Record<string, number>;
}

interface Pending {
  route: StreamRoute;
  reading: Reading;
  done: Committed;
  /** The agent's own reading (health): not counted as accepted from sensors. */
  internal?: boolean;
}

const APPLIED_FILTERS = 'appliedFilters';

/**
 * The store-and-forward outbox: group commit of readings, the size cap and its full-policy, time-to-live, and batch
 * formation with gap-free per-device sequence numbers. A reading's callback runs only after its commit.
 */
export class Outbox {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private counters: OutboxCounters;
  private readonly refusedBy = new Map<string, number>();
  private accepted = 0;
  private closed = false;
  private readonly maxGroup: number;
  private acked: number[] = [];

  constructor(
    private readonly store: OutboxStore,
    private readonly opts: OutboxOptions,
  ) {
    this.counters = store.counters();
    this.maxGroup = opts.maxGroup ?? 4096;
    // The engine resumes with the rules its persisted states belong to; differing rules from the config file replace
    // them through the same path as a change from the cloud, so held readings are emitted, not lost.
    const stored = store.setting(APPLIED_FILTERS);
    const applied: AppliedFilters = stored
      ? (JSON.parse(stored) as AppliedFilters)
      : { version: 0, rules: parseWith(FilterRules, opts.filters ?? []) };
    this.filters = new FilterEngine(applied.rules, store.filterStates());
    this.applied = applied;
    if (applied.version === 0 && JSON.stringify(applied.rules) !== JSON.stringify(opts.filters ?? [])) {
      this.applyFilters({ version: 0, rules: parseWith(FilterRules, opts.filters ?? []) });
    } else if (!stored) {
      store.transaction(() => store.setSetting(APPLIED_FILTERS, JSON.stringify(applied)));
    }
  }

  private readonly filters: FilterEngine;
  private applied: AppliedFilters;

  /** The filter rules in force and the desired-config version they came with (0: the config file's). */
  appliedFilters(): AppliedFilters {
    return this.applied;
  }

  /**
   * Replaces the filter rules atomically: what the old rules held (open windows, a swinging door's held reading) is
   * emitted, the new rules and their version are persisted, all in one transaction.
   */
  applyFilters(next: AppliedFilters): void {
    this.flush();
    this.store.transaction(() => {
      try {
        this.store.insertRows(this.filters.replace(next.rules));
        this.store.saveFilterStates(this.filters.takeDirty());
        this.store.setSetting(APPLIED_FILTERS, JSON.stringify(next));
      } catch (err) {
        this.filters.rollback();
        throw err;
      }
    });
    this.applied = next;
    this.opts.onCommitted?.();
  }

  /** A small persisted setting of the agent (kept with the outbox, in its own transaction). */
  setting(key: string): string | undefined {
    return this.store.setting(key);
  }

  setSetting(key: string, value: string): void {
    this.store.transaction(() => this.store.setSetting(key, value));
  }

  /** Lets time act on the filters (windows close, held readings are archived after maxInterval), durably. */
  tickFilters(): void {
    const now = this.opts.now();
    let n = 0;
    this.store.transaction(() => {
      try {
        const rows = this.filters.tick(now);
        n = rows.length;
        this.store.insertRows(rows);
        this.store.saveFilterStates(this.filters.takeDirty());
      } catch (err) {
        this.filters.rollback();
        throw err;
      }
    });
    if (n) this.opts.onCommitted?.();
  }

  /** Queues a reading for the next group commit; `done` runs after the commit (or with the reason it was refused). */
  submit(route: StreamRoute, reading: Reading, done: Committed, internal = false): void {
    if (this.closed) {
      done(new FleetwaveError('E_OUTBOX_CLOSED'));
      return;
    }
    this.queue.push({ route, reading, done, internal });
    if (this.queue.length >= this.maxGroup) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.commitWindowMs);
  }

  /** Counts a reading refused before it reached the outbox (bad topic, bad payload). */
  countRefused(code: ErrorCode): void {
    this.refusedBy.set(code, (this.refusedBy.get(code) ?? 0) + 1);
  }

  /** Commits everything queued in one transaction, then calls back. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const group = this.queue;
    if (group.length === 0) return;
    this.queue = [];
    const now = this.opts.now();
    let accepted: Pending[];
    let refused: Pending[] = [];
    try {
      this.store.transaction(() => {
        const c = { ...this.counters };
        this.expireIn(c, now);
        const used = () => {
          const t = this.store.totals();
          return t.rowBytes + t.batchBytes;
        };
        if (this.opts.fullPolicy === 'refuse') {
          // a reading's unfiltered row is the most it can add (filters only drop or hold, alerts aside)
          let room = this.opts.capBytes - used();
          let fits = 0;
          while (fits < group.length) {
            const bytes = readingRow(group[fits]!.route, group[fits]!.reading).bytes;
            if (room < bytes) break;
            room -= bytes;
            fits++;
          }
          accepted = group.slice(0, fits);
          refused = group.slice(fits);
          this.store.insertRows(accepted.flatMap((p) => this.filters.process(p.route, p.reading)));
        } else {
          accepted = group;
          this.store.insertRows(group.flatMap((p) => this.filters.process(p.route, p.reading)));
          const over = used() - this.opts.capBytes;
          if (over > 0) {
            const dropped = this.store.takeLowest(over);
            c.droppedCap += dropped.length;
            this.recordLoss(dropped, 'cap', now);
          }
        }
        this.store.saveFilterStates(this.filters.takeDirty());
        this.store.setCounters(c);
        this.counters = c;
      });
    } catch (err) {
      this.filters.rollback();
      const e =
        err instanceof FleetwaveError
          ? err
          : new FleetwaveError('E_OUTBOX_CLOSED', `commit failed: ${(err as Error).message}`);
      for (const p of group) p.done(e);
      return;
    }
    for (const p of accepted!) if (!p.internal) this.accepted++;
    for (const p of accepted!) p.done();
    if (accepted!.length) this.opts.onCommitted?.();
    if (refused.length) {
      this.refusedBy.set('E_OUTBOX_FULL', (this.refusedBy.get('E_OUTBOX_FULL') ?? 0) + refused.length);
      const e = new FleetwaveError('E_OUTBOX_FULL', `outbox is at its cap of ${this.opts.capBytes} bytes`);
      for (const p of refused) p.done(e);
    }
  }

  private expireIn(c: OutboxCounters, now: number): void {
    const expired = this.store.takeExpired(now);
    if (expired.length === 0) return;
    c.droppedTtl += expired.length;
    this.recordLoss(expired, 'ttl', now);
  }

  /** Records dropped rows as loss records (new, or widening the stream's unsent one), inside the caller's transaction. */
  private recordLoss(dropped: readonly OutboxRow[], reason: 'cap' | 'ttl', now: number): void {
    const c = lossChanges(dropped, reason, now, (stream) => this.store.pendingLoss(stream, reason));
    this.store.insertRows(c.insert);
    for (const u of c.update) this.store.updateRow(u.id, u.body, u.bytes);
  }

  /** Drops readings past their stream's time-to-live, recording the loss. */
  expire(): void {
    this.store.transaction(() => {
      const c = { ...this.counters };
      this.expireIn(c, this.opts.now());
      this.store.setCounters(c);
      this.counters = c;
    });
  }

  /** Batches formed earlier and not yet acknowledged, oldest first (re-sent after a reconnect or a restart). */
  unacknowledged(): OutboxBatch[] {
    this.deleteAcknowledged();
    return this.store.batches();
  }

  /** Forms the next batch from the highest-priority, oldest rows, persisting it with its sequence numbers. */
  claimBatch(): OutboxBatch | null {
    return this.claimBatches(1)[0] ?? null;
  }

  /**
   * Forms up to `n` batches in one transaction (one fsync for all of them), also deleting the batches acknowledged
   * since the last transaction.
   */
  claimBatches(n: number): OutboxBatch[] {
    const acked = this.takeAcked();
    return this.store.transaction(() => {
      for (const seq of acked) this.store.deleteBatch(seq);
      const out: OutboxBatch[] = [];
      const c = { ...this.counters };
      const now = this.opts.now();
      while (out.length < n) {
        const rows = this.store.takeForBatch(
          this.applied.tunables?.batchMaxRecords ?? this.opts.batchMaxRecords,
          this.opts.batchMaxBytes,
        );
        if (rows.length === 0) break;
        const batch: OutboxBatch = {
          seqFrom: c.nextSeq,
          seqTo: c.nextSeq + rows.length - 1,
          payload: batchPayload(this.opts.device, c.nextSeq, rows, now, this.opts.compression),
          createdAt: now,
        };
        this.store.insertBatch(batch);
        c.nextSeq += rows.length;
        out.push(batch);
      }
      if (out.length) {
        this.store.setCounters(c);
        this.counters = c;
      }
      return out;
    });
  }

  /**
   * The broker acknowledged the batch: it leaves the outbox. Deletions are coalesced into the next transaction (or
   * one of their own on the next turn of the event loop); a crash before that only re-sends the batch, which the
   * controller drops as a duplicate.
   */
  acknowledge(seqFrom: number): void {
    this.acked.push(seqFrom);
    if (this.acked.length === 1) setImmediate(() => this.deleteAcknowledged());
  }

  private takeAcked(): number[] {
    const acked = this.acked;
    this.acked = [];
    return acked;
  }

  private deleteAcknowledged(): void {
    if (this.closed || this.acked.length === 0) return;
    const acked = this.takeAcked();
    this.store.transaction(() => {
      for (const seq of acked) this.store.deleteBatch(seq);
    });
  }

  status(): OutboxStatus {
    this.deleteAcknowledged();
    const t = this.store.totals();
    const batches = this.store.batches();
    const inBatches = batches.reduce((s, b) => s + b.seqTo - b.seqFrom + 1, 0);
    const oldest = Math.min(t.oldestTs ?? Number.POSITIVE_INFINITY, ...batches.map((b) => b.createdAt));
    return {
      depth: t.rows + inBatches,
      bytes: t.rowBytes + t.batchBytes,
      oldestAgeMs: Number.isFinite(oldest) ? Math.max(0, this.opts.now() - oldest) : 0,
      batches: t.batches,
      lastSeq: this.counters.nextSeq - 1,
      dropped: { cap: this.counters.droppedCap, ttl: this.counters.droppedTtl },
      refused: Object.fromEntries(this.refusedBy),
      accepted: this.accepted,
      filtered: { ...this.filters.dropped } as Record<string, number>,
    };
  }

  /** Commits what is queued and closes the store. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.deleteAcknowledged();
    this.closed = true;
    this.store.close();
  }
}

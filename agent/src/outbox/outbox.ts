import { type ErrorCode, FilterRules, FleetwaveError, parseWith } from '@fleetwave/shared';
import { FilterEngine } from '../filters/engine.js';
import type { Reading } from '../reading.js';
import type { StreamRoute } from '../streams.js';
import { batchesOf, batchOf, type OutboxBatch } from './batches.js';
import type { AppliedFilters, Committed, OutboxOptions, OutboxStatus, Pending } from './outbox-types.js';
import { chunksOf, lossChanges, type OutboxRecord, readingBound } from './policy.js';
import type { OutboxCounters, OutboxStore, StoredChunk } from './store.js';

export type { OutboxBatch } from './batches.js';
export type { AppliedFilters, Committed, OutboxOptions, OutboxStatus } from './outbox-types.js';

const APPLIED_FILTERS = 'appliedFilters';
/**
 * Batches claimed in one transaction ahead of the in-flight window while draining a backlog (fewer fsyncs), and at
 * most this many records beyond what was asked for (an alert committed meanwhile waits behind no more than these).
 */
const CLAIM_AHEAD = 256;
const CLAIM_AHEAD_RECORDS = 128_000;
/** … and at most this many chunk bytes: batches claimed ahead are held in memory until they are sent. */
const CLAIM_AHEAD_BYTES = 1024 * 1024;

/**
 * The store-and-forward outbox: group commit of readings into chunks, the size cap and its full-policy,
 * time-to-live, and batches of whole chunks with gap-free per-device sequence numbers. A reading's callback runs only
 * after its commit. In steady state one transaction per group does everything: the new chunk goes in already claimed
 * for the next batch, and the chunks acknowledged since the last one are deleted.
 */
export class Outbox {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  /** When the last transaction committed (the clock of `opts.now`). */
  private lastCommitAt = Number.NEGATIVE_INFINITY;
  private counters: OutboxCounters;
  private readonly refusedBy = new Map<string, number>();
  private accepted = 0;
  private closed = false;
  private readonly maxGroup: number;
  /** Chunks acknowledged and not yet deleted (deleted in the next transaction). */
  private acked = new Set<number>();
  /** Batches claimed and not yet handed to the uplink. */
  private ready: OutboxBatch[] = [];
  /** Records that time alone produced (filter ticks), committed with the next group. */
  private ticked: OutboxRecord[] = [];
  private readonly filters: FilterEngine;
  private applied: AppliedFilters;

  constructor(
    private readonly store: OutboxStore,
    private readonly opts: OutboxOptions,
  ) {
    this.counters = store.counters();
    this.maxGroup = opts.maxGroup ?? 250;
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
        this.store.insertChunks(chunksOf(this.filters.replace(next.rules)), false);
        this.store.saveFilterStates(this.filters.takeDirty());
        this.store.setSetting(APPLIED_FILTERS, JSON.stringify(next));
      } catch (err) {
        this.filters.rollback();
        throw err;
      }
    });
    this.filters.settle();
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

  /** Lets time act on the filters (windows close, held readings are archived); committed with the next group. */
  tickFilters(): void {
    const records = this.filters.tick(this.opts.now());
    if (records.length === 0) return;
    this.ticked.push(...records);
    this.schedule(this.opts.now() + this.opts.maxAckDelayMs);
  }

  /** Queues a reading for the next group commit; `done` runs after the commit (or with the reason it was refused). */
  submit(route: StreamRoute, reading: Reading, done: Committed, internal = false): void {
    if (this.closed) {
      done(new FleetwaveError('E_OUTBOX_CLOSED'));
      return;
    }
    if (this.opts.space?.isFull) {
      this.refuseFull([{ route, reading, done, internal }]);
      return;
    }
    this.queue.push({ route, reading, done, internal });
    if (this.queue.length >= this.maxGroup) this.flush();
    // at most one commit per maxAckDelay: a reading after a quiet spell commits at once (a sensor's first PUBACK
    // after start is not held back), one during a busy spell waits for maxAckDelay after the last commit; the
    // agent's own readings (health) wait maxAckDelay, to ride along with a sensor's
    else if (!internal) this.schedule(Math.max(this.opts.now(), this.lastCommitAt + this.opts.maxAckDelayMs));
    else if (this.queue.length === 1) this.schedule(this.opts.now() + this.opts.maxAckDelayMs);
  }

  /** Counts a reading refused before it reached the outbox (bad topic, bad payload). */
  countRefused(code: ErrorCode): void {
    this.refusedBy.set(code, (this.refusedBy.get(code) ?? 0) + 1);
  }

  /** One timer for the next transaction: the oldest queued reading's deadline, or the pending deletes'. */
  private schedule(at: number): void {
    if (this.closed || (this.timer && this.timerAt <= at)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.flush(), Math.max(0, at - this.opts.now()));
  }

  private takeAcked(): number[] {
    const ids = [...this.acked];
    this.acked = new Set();
    return ids;
  }

  /**
   * Commits everything queued in one transaction (with the acknowledged deletes, and the next batches claimed when
   * the uplink has room), then calls back.
   */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    const group = this.queue;
    const ticked = this.ticked;
    const acked = this.takeAcked();
    if (group.length === 0 && ticked.length === 0 && acked.length === 0) return;
    this.queue = [];
    this.ticked = [];
    if (this.opts.space?.check()) {
      // the disk is full: nothing new is stored; what the cloud acknowledged still leaves, and sending goes on
      this.ticked = ticked;
      this.refuseFull(group);
      this.drainOnly(acked);
      return;
    }
    const now = this.opts.now();
    let accepted: Pending[] = group;
    let refused: Pending[] = [];
    let claimed = 0;
    const readyBefore = [...this.ready];
    try {
      this.store.transaction(() => {
        this.store.deleteChunks(acked);
        this.expireIn(now);
        if (this.opts.fullPolicy === 'refuse') {
          let room = this.opts.capBytes - this.store.totals().bytes;
          let fits = 0;
          while (fits < group.length) {
            const bound = readingBound(group[fits]!.route, group[fits]!.reading);
            if (room < bound) break;
            room -= bound;
            fits++;
          }
          accepted = group.slice(0, fits);
          refused = group.slice(fits);
        }
        const records = [...ticked, ...accepted.flatMap((p) => this.filters.process(p.route, p.reading))];
        const chunks = chunksOf(records);
        const want = Math.max(0, (this.opts.wantBatches?.() ?? 0) - this.ready.length);
        // nothing older waiting and the uplink wants batches: the new chunks go in claimed (no second write)
        const direct = want > 0 && chunks.length > 0 && this.store.totals().waitingChunks === 0;
        const stored = this.store.insertChunks(chunks, direct);
        if (direct) claimed = this.pushBatches(stored, now);
        else {
          // alerts jump the queue, also ahead of batches claimed earlier and not yet sent (and, claimed, they are
          // out of reach of the cap below)
          const alerts = stored.filter((ch) => ch.rank === 0);
          if (alerts.length) claimed += this.pushBatches(this.store.claim(alerts), now, true);
        }
        if (this.opts.fullPolicy === 'drop-oldest') {
          const over = this.store.totals().bytes - this.opts.capBytes;
          if (over > 0) {
            const dropped = this.store.takeLowest(over);
            this.store.addDropped(
              dropped.reduce((s, ch) => s + ch.records, 0),
              0,
            );
            this.recordLoss(dropped, 'cap', now);
          }
        }
        if (!direct && want > 0) claimed += this.claimInto(want, now);
        this.store.saveFilterStates(this.filters.takeDirty());
        this.counters = this.store.counters();
      });
    } catch (err) {
      this.filters.rollback();
      this.ready = readyBefore;
      if (this.opts.space?.noteError(err, 'outbox commit')) {
        this.ticked = ticked;
        this.refuseFull(group);
        this.drainOnly(acked);
        return;
      }
      for (const id of acked) this.acked.add(id);
      // the filter states went back to before the tick too: the next tick emits those records again
      const e =
        err instanceof FleetwaveError
          ? err
          : new FleetwaveError('E_OUTBOX_CLOSED', `commit failed: ${(err as Error).message}`);
      for (const p of group) p.done(e);
      return;
    }
    this.lastCommitAt = now;
    this.filters.settle();
    for (const p of accepted) if (!p.internal) this.accepted++;
    for (const p of accepted) p.done();
    if (accepted.length || ticked.length || claimed) this.opts.onCommitted?.();
    if (refused.length) {
      this.refusedBy.set('E_OUTBOX_FULL', (this.refusedBy.get('E_OUTBOX_FULL') ?? 0) + refused.length);
      const e = new FleetwaveError('E_OUTBOX_FULL', `outbox is at its cap of ${this.opts.capBytes} bytes`);
      for (const p of refused) p.done(e);
    }
  }

  /** Readings refused because the disk is full: no PUBACK (their sensors send them again), counted. */
  private refuseFull(group: readonly Pending[]): void {
    if (group.length === 0) return;
    const outside = group.filter((p) => !p.internal).length;
    if (outside) this.refusedBy.set('E_STORAGE_FULL', (this.refusedBy.get('E_STORAGE_FULL') ?? 0) + outside);
    const e = new FleetwaveError('E_STORAGE_FULL');
    for (const p of group) p.done(e);
  }

  /**
   * On a full disk: a transaction with only the deletes of acknowledged chunks and the claims the uplink has room
   * for. It needs little space (the reserve released on entering the full state covers it), and it frees some.
   */
  private drainOnly(acked: number[]): void {
    const now = this.opts.now();
    const want = Math.max(0, (this.opts.wantBatches?.() ?? 0) - this.ready.length);
    if (acked.length === 0 && want === 0) return;
    const readyBefore = [...this.ready];
    let claimed = 0;
    try {
      this.store.transaction(() => {
        this.store.deleteChunks(acked);
        if (want > 0) claimed = this.claimInto(want, now);
        this.counters = this.store.counters();
      });
    } catch (err) {
      this.ready = readyBefore;
      for (const id of acked) this.acked.add(id);
      this.opts.space?.noteError(err, 'outbox drain');
      // not even a delete commits: nothing is lost (the chunks are still there), try again in a second
      this.schedule(this.opts.now() + 1000);
      return;
    }
    if (claimed) this.opts.onCommitted?.();
  }

  private expireIn(now: number): void {
    const expired = this.store.takeExpired(now);
    if (expired.length === 0) return;
    this.store.addDropped(
      0,
      expired.reduce((s, ch) => s + ch.records, 0),
    );
    this.recordLoss(expired, 'ttl', now);
  }

  /** Records dropped chunks as loss records (new, or widening the stream's waiting one), in the caller's transaction. */
  private recordLoss(dropped: readonly StoredChunk[], reason: 'cap' | 'ttl', now: number): void {
    const c = lossChanges(dropped, reason, now, (stream) => this.store.pendingLoss(stream, reason));
    this.store.insertChunks(c.insert, false);
    for (const r of c.replace) this.store.replaceBody(r.id, r.body);
  }

  /** Drops records past their stream's time-to-live, recording the loss. */
  expire(): void {
    this.store.transaction(() => {
      this.expireIn(this.opts.now());
      this.counters = this.store.counters();
    });
  }

  private limits() {
    return {
      maxRecords: this.applied.tunables?.batchMaxRecords ?? this.opts.batchMaxRecords,
      maxBytes: this.opts.batchMaxBytes,
    };
  }

  private batch(chunks: readonly StoredChunk[], now: number): OutboxBatch {
    return batchOf(this.opts.device, chunks, now, this.opts.format ?? 'v2', this.opts.compression ?? 'none');
  }

  /**
   * Groups claimed chunks (in sequence order) into batches within the limits, after the batches ready to send or
   * (`first`) before them; returns how many were added.
   */
  private pushBatches(chunks: readonly StoredChunk[], now: number, first = false): number {
    const batches = batchesOf(chunks, this.limits()).map((group) => this.batch(group, now));
    this.ready = first ? [...batches, ...this.ready] : [...this.ready, ...batches];
    return batches.length;
  }

  /** Claims up to `n` batches of whole waiting chunks, highest priority and oldest first, inside the caller's transaction. */
  private claimInto(n: number, now: number, need = n): number {
    let formed = 0;
    let claimedRecords = 0;
    let claimedBytes = 0;
    for (;;) {
      const groups = batchesOf(this.store.waiting(256), this.limits());
      for (const group of groups) {
        const enough = claimedRecords >= CLAIM_AHEAD_RECORDS || claimedBytes >= CLAIM_AHEAD_BYTES;
        if (formed >= n || (formed >= need && enough)) return formed;
        this.ready.push(this.batch(this.store.claim(group), now));
        formed++;
        claimedRecords += group.reduce((s, ch) => s + ch.records, 0);
        claimedBytes += group.reduce((s, ch) => s + ch.body.length, 0);
      }
      if (groups.length === 0) return formed;
    }
  }

  /** Batches claimed earlier and not yet acknowledged, in sequence order (re-sent after a reconnect or a restart). */
  unacknowledged(): OutboxBatch[] {
    this.ready = [];
    const chunks = this.store.claimed().filter((ch) => !this.acked.has(ch.id));
    const now = this.opts.now();
    return batchesOf(chunks, { ...this.limits(), contiguous: true }).map((group) => this.batch(group, now));
  }

  /** Forms the next batch from the highest-priority, oldest chunks, persisting its sequence numbers. */
  claimBatch(): OutboxBatch | null {
    return this.claimBatches(1)[0] ?? null;
  }

  /**
   * Up to `n` batches to send: those claimed ahead first, then new ones claimed in one transaction (one fsync for up
   * to CLAIM_AHEAD batches) that also deletes the chunks acknowledged since the last one.
   */
  claimBatches(n: number): OutboxBatch[] {
    const out = this.ready.splice(0, n);
    if (out.length === n || this.closed) return out;
    // nothing to claim: the acknowledged deletes wait for the next transaction (see acknowledge)
    if (this.store.totals().waitingChunks === 0) return out;
    const acked = this.takeAcked();
    const now = this.opts.now();
    try {
      this.store.transaction(() => {
        this.store.deleteChunks(acked);
        this.claimInto(Math.max(n - out.length, CLAIM_AHEAD), now, n - out.length);
        this.counters = this.store.counters();
      });
    } catch (err) {
      this.ready = [];
      for (const id of acked) this.acked.add(id);
      // no room even to claim: nothing new goes out now; the next acknowledgement or timer tries again
      if (this.opts.space?.noteError(err, 'outbox claim')) {
        this.schedule(this.opts.now() + 1000);
        return out;
      }
      throw err;
    }
    out.push(...this.ready.splice(0, n - out.length));
    return out;
  }

  /**
   * The broker acknowledged the batch: its chunks leave the outbox in the next transaction (a group commit, a claim,
   * or one of their own at the latest 2 × maxAckDelay later, at least 1 s). A crash before that only re-sends the
   * batch, which the controller drops as a duplicate.
   */
  acknowledge(batch: OutboxBatch): void {
    for (const id of batch.chunkIds) this.acked.add(id);
    this.schedule(this.opts.now() + Math.max(1000, 2 * this.opts.maxAckDelayMs));
  }

  status(): OutboxStatus {
    const t = this.store.totals();
    return {
      depth: t.records,
      bytes: t.bytes,
      oldestAgeMs: t.oldestTs === null ? 0 : Math.max(0, this.opts.now() - t.oldestTs),
      batches: t.claimedChunks,
      lastSeq: this.counters.nextSeq - 1,
      dropped: { cap: this.counters.droppedCap, ttl: this.counters.droppedTtl },
      refused: Object.fromEntries(this.refusedBy),
      accepted: this.accepted,
      filtered: { ...this.filters.dropped } as Record<string, number>,
    };
  }

  /** Commits what is queued, deletes what was acknowledged, and closes the store. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.store.close();
  }
}

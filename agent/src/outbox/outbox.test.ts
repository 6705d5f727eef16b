import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBatchV2, decodeMessage, TelemetryBatch } from '@fleetwave/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StreamRoute } from '../streams.js';
import { MemoryOutboxStore } from './memory-store.js';
import { Outbox, type OutboxOptions } from './outbox.js';
import { SqliteOutboxStore } from './sqlite-store.js';
import type { OutboxStore } from './store.js';

const tel: StreamRoute = { stream: 's/t', priority: 'telemetry', rank: 2, ttlMs: undefined };
const bulk: StreamRoute = { stream: 's/b', priority: 'bulk', rank: 3, ttlMs: undefined };
const short: StreamRoute = { stream: 's/short', priority: 'telemetry', rank: 2, ttlMs: 1000 };

function make(store: OutboxStore, over: Partial<OutboxOptions> = {}) {
  let now = 1_000_000;
  const box = new Outbox(store, {
    device: 'gw-1',
    capBytes: 1_000_000,
    fullPolicy: 'drop-oldest',
    maxAckDelayMs: 1000,
    batchMaxRecords: 100,
    batchMaxBytes: 100_000,
    now: () => now,
    ...over,
  });
  return { box, advance: (ms: number) => (now += ms) };
}

function drain(box: Outbox): TelemetryBatch[] {
  const out: TelemetryBatch[] = [];
  for (let b = box.claimBatch(); b; b = box.claimBatch()) {
    out.push(decodeBatchV2(b.payload));
    box.acknowledge(b);
  }
  return out;
}

/** Counts the store's transactions (what costs an fsync and pages on flash). */
function counting(store: OutboxStore): OutboxStore & { transactions: number } {
  const s = store as OutboxStore & { transactions: number };
  s.transactions = 0;
  const tx = store.transaction.bind(store);
  s.transaction = <T>(fn: () => T): T => {
    s.transactions++;
    return tx(fn);
  };
  return s;
}

const sqlite = () => new SqliteOutboxStore(join(mkdtempSync(join(tmpdir(), 'fw-outbox-')), 'o.db'));

afterEach(() => {
  vi.useRealTimers();
});

describe.each([
  ['memory', () => new MemoryOutboxStore()],
  ['sqlite', sqlite],
])('Outbox over %s', (_name, newStore) => {
  it('calls back only after the group commit, and all readings of the group share it', () => {
    const { box } = make(newStore());
    const done: number[] = [];
    for (let i = 0; i < 10; i++) box.submit(tel, { value: i, ts: 1_000_000 + i }, () => done.push(i));
    expect(done).toEqual([]);
    box.flush();
    expect(done).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(box.status()).toMatchObject({ depth: 10, batches: 0 });
    box.close();
  });

  it('commits at most once per maxAckDelay (at once after a quiet spell), and at once at maxGroup readings', () => {
    vi.useFakeTimers();
    let clock = 5_000_000;
    const { box } = make(newStore(), { maxAckDelayMs: 1000, maxGroup: 5, now: () => clock });
    const tick = (ms: number) => {
      clock += ms;
      vi.advanceTimersByTime(ms);
    };
    const done: number[] = [];
    // nothing committed yet: the first reading commits on the next turn of the event loop
    box.submit(tel, { value: 0, ts: 1 }, () => done.push(0));
    expect(done).toEqual([]);
    tick(0);
    expect(done).toEqual([0]);
    // within maxAckDelay of that commit: readings wait for maxAckDelay after it
    tick(600);
    box.submit(tel, { value: 1, ts: 2 }, () => done.push(1));
    tick(200);
    box.submit(tel, { value: 2, ts: 3 }, () => done.push(2));
    tick(199);
    expect(done).toEqual([0]);
    tick(1);
    expect(done).toEqual([0, 1, 2]);
    // maxGroup readings commit at once, whatever the last commit
    for (let i = 3; i < 8; i++) box.submit(tel, { value: i, ts: i }, () => done.push(i));
    expect(done).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // a quiet spell longer than maxAckDelay: the next reading goes at once again
    tick(1500);
    box.submit(tel, { value: 8, ts: 9 }, () => done.push(8));
    tick(0);
    expect(done.at(-1)).toBe(8);
    box.close();
  });

  it('forms valid batches of whole chunks with gap-free sequence numbers, priority first, stream order kept', () => {
    const { box } = make(newStore(), { batchMaxRecords: 3 });
    for (let i = 0; i < 4; i++) box.submit(bulk, { value: i, ts: 1 + i }, () => {});
    for (let i = 0; i < 4; i++) box.submit(tel, { value: 10 + i, ts: 1 + i }, () => {});
    box.flush();
    const batches = drain(box);
    expect(batches.map((b) => b.records.length)).toEqual([4, 4]); // a chunk is never split across batches
    const records = batches.flatMap((b) => b.records);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(records.map((r) => (r.kind === 'reading' ? r.value : -1))).toEqual([10, 11, 12, 13, 0, 1, 2, 3]);
    box.flush();
    expect(box.status()).toMatchObject({ depth: 0, lastSeq: 8, batches: 0 });
  });

  it('sends v1 JSON batches of the same records when asked (a controller older than v2)', () => {
    const { box } = make(newStore(), { format: 'v1' });
    for (let i = 0; i < 3; i++) box.submit(tel, { value: i / 10, ts: 5 + i, unit: 'C' }, () => {});
    box.flush();
    const b = box.claimBatch()!;
    const batch = decodeMessage(TelemetryBatch, b.payload);
    expect(batch.records).toEqual(
      [0, 1, 2].map((i) => ({ seq: 1 + i, kind: 'reading', stream: 's/t', ts: 5 + i, value: i / 10, unit: 'C' })),
    );
  });

  it('drops the oldest chunk of the lowest priority at the cap, and sends a loss record with its exact range', () => {
    const store = newStore();
    const { box } = make(store);
    for (let i = 0; i < 5; i++) box.submit(bulk, { value: i, ts: 1 + i }, () => {});
    box.flush();
    const first = store.totals().bytes;
    box.close();
    const again = newStore();
    const { box: b2 } = make(again, { capBytes: first + 20 });
    for (let i = 0; i < 5; i++) b2.submit(bulk, { value: i, ts: 1 + i }, () => {});
    b2.flush();
    b2.submit(tel, { value: 9, ts: 20 }, () => {});
    b2.submit(tel, { value: 8, ts: 21 }, () => {});
    b2.flush();
    expect(b2.status().dropped.cap).toBe(5);
    const records = drain(b2).flatMap((b) => b.records);
    const loss = records.find((r) => r.kind === 'loss');
    expect(loss).toMatchObject({ kind: 'loss', stream: 's/b', reason: 'cap', count: 5, firstTs: 1, lastTs: 5 });
    expect(loss!.kind === 'loss' && loss!.ingestTo - loss!.ingestFrom).toBe(4);
    expect(records.filter((r) => r.kind === 'reading').map((r) => r.stream)).toEqual(['s/t', 's/t']);
  });

  it('widens one loss record per stream while the cap keeps dropping, instead of piling them up', () => {
    const { box } = make(newStore(), { capBytes: 5 * 90 + 200 });
    for (let i = 0; i < 50; i++) {
      box.submit(bulk, { value: i, ts: 1 + i }, () => {});
      box.flush();
    }
    const records = drain(box).flatMap((b) => b.records);
    const losses = records.filter((r) => r.kind === 'loss');
    expect(losses).toHaveLength(1);
    const kept = records.filter((r) => r.kind === 'reading').length;
    expect(kept).toBeGreaterThan(0);
    expect(losses[0]).toMatchObject({ stream: 's/b', reason: 'cap', count: 50 - kept, firstTs: 1, lastTs: 50 - kept });
    expect(box.status().dropped.cap).toBe(50 - kept);
  });

  it('refuses new input at the cap under the refuse policy, changing nothing stored', () => {
    const bound = 32 + tel.stream.length;
    const { box } = make(newStore(), { capBytes: bound * 3, fullPolicy: 'refuse' });
    const results: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) box.submit(tel, { value: i, ts: 1 }, (err) => results.push(err?.code));
    box.flush();
    expect(results).toEqual([undefined, undefined, undefined, 'E_OUTBOX_FULL', 'E_OUTBOX_FULL']);
    expect(box.status()).toMatchObject({ depth: 3, refused: { E_OUTBOX_FULL: 2 }, dropped: { cap: 0 } });
  });

  it('expires chunks past their time-to-live and reports them as lost', () => {
    const { box, advance } = make(newStore());
    box.submit(short, { value: 1, ts: 1_000_000 }, () => {});
    box.submit(tel, { value: 2, ts: 1_000_000 }, () => {});
    box.flush();
    advance(1500);
    box.expire();
    const records = drain(box).flatMap((b) => b.records);
    expect(records.map((r) => r.kind).sort()).toEqual(['loss', 'reading']);
    expect(records.find((r) => r.kind === 'loss')).toMatchObject({ reason: 'ttl', count: 1, stream: 's/short' });
    expect(box.status().dropped.ttl).toBe(1);
  });

  it('keeps a claimed batch until it is acknowledged and hands out the same records again', () => {
    const { box } = make(newStore());
    box.submit(tel, { value: 1, ts: 5 }, () => {});
    box.flush();
    const b = box.claimBatch()!;
    expect(box.claimBatch()).toBeNull();
    expect(box.unacknowledged().map((x) => x.payload.equals(b.payload))).toEqual([true]);
    box.acknowledge(b);
    expect(box.unacknowledged()).toEqual([]);
    box.flush();
    expect(box.status()).toMatchObject({ depth: 0, batches: 0 });
  });

  it('lets an alert jump the queue while a backlog drains, ahead of batches claimed earlier', () => {
    const alert: StreamRoute = { stream: 's/alarm', priority: 'alert', rank: 0, ttlMs: undefined };
    const { box } = make(newStore(), { batchMaxRecords: 10, wantBatches: () => 0 });
    for (let g = 0; g < 20; g++) {
      for (let i = 0; i < 10; i++) box.submit(bulk, { value: g * 10 + i, ts: 1 + g * 10 + i }, () => {});
      box.flush();
    }
    const first = box.claimBatches(1); // claims ahead: many batches of the backlog are now claimed, not yet sent
    expect(first).toHaveLength(1);
    box.submit(alert, { value: 99, ts: 500 }, () => {});
    box.flush();
    const next = decodeBatchV2(box.claimBatches(1)[0]!.payload).records;
    expect(next).toMatchObject([{ stream: 's/alarm', value: 99 }]);
    const rest = [first[0]!, ...box.claimBatches(100)].flatMap((b) => decodeBatchV2(b.payload).records);
    expect(rest).toHaveLength(200);
    expect(new Set([...rest, ...next].map((r) => r.seq)).size).toBe(201);
  });

  it('in steady state spends one transaction per group: the chunk goes in claimed, the acknowledged one out', () => {
    const store = counting(newStore());
    let slots = 8;
    const { box } = make(store, { wantBatches: () => slots });
    const sent = [];
    for (let cycle = 0; cycle < 5; cycle++) {
      for (let i = 0; i < 10; i++) box.submit(tel, { value: cycle * 10 + i, ts: 1 + cycle * 10 + i }, () => {});
      const before = store.transactions;
      box.flush();
      const batches = box.claimBatches(slots);
      expect(store.transactions - before).toBe(1);
      expect(batches).toHaveLength(1);
      sent.push(...decodeBatchV2(batches[0]!.payload).records.map((r) => r.seq));
      box.acknowledge(batches[0]!);
    }
    expect(sent).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    slots = 0;
    box.flush();
    expect(box.status()).toMatchObject({ depth: 0 });
  });
});

it('a commit that fails at its very end (a full disk) leaves the filters where the stored readings left them', () => {
  const store = new MemoryOutboxStore();
  let failCommit = false;
  const tx = store.transaction.bind(store);
  store.transaction = <T>(fn: () => T): T =>
    tx(() => {
      const r = fn();
      if (failCommit) throw new Error('database or disk is full');
      return r;
    });
  const { box } = make(store, { filters: [{ match: 's/*', deadband: { absolute: 1 }, mirrorRaw: false }] });
  const results: (string | undefined)[] = [];
  const send = (value: number, ts: number) => {
    box.submit(tel, { value, ts }, (err) => results.push(err?.code));
    box.flush();
  };
  send(10, 1);
  failCommit = true;
  send(20, 2); // refused: never stored
  failCommit = false;
  send(20.2, 3); // 10.2 from the last stored reading: outside the deadband, kept
  expect(results).toEqual([undefined, 'E_OUTBOX_CLOSED', undefined]);
  expect(drain(box).flatMap((b) => b.records.map((r) => (r as { value: number }).value))).toEqual([10, 20.2]);
});

it('an SQLite outbox resumes after a restart: claimed records unchanged, sequence numbers continue', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fw-outbox-')), 'o.db');
  const first = make(new SqliteOutboxStore(path)).box;
  for (let i = 0; i < 5; i++) first.submit(tel, { value: i, ts: 1 }, () => {});
  first.flush();
  const b = first.claimBatch()!;
  for (let i = 0; i < 2; i++) first.submit(tel, { value: 10 + i, ts: 1 }, () => {});
  first.close();
  const again = make(new SqliteOutboxStore(path)).box;
  const resent = again.unacknowledged();
  expect(decodeBatchV2(resent[0]!.payload).records).toEqual(decodeBatchV2(b.payload).records);
  again.acknowledge(resent[0]!);
  const rest = drain(again).flatMap((x) => x.records);
  expect(rest.map((r) => r.seq)).toEqual([6, 7]);
  again.close();
});

it('applies a desired batch size with its filter rules, and keeps both across a restart', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fw-outbox-')), 'o.db');
  const first = make(new SqliteOutboxStore(path)).box;
  first.applyFilters({ version: 4, rules: [], tunables: { batchMaxRecords: 2 } });
  for (let i = 0; i < 5; i++) {
    first.submit(tel, { value: i, ts: 1 }, () => {});
    first.flush();
  }
  expect(first.claimBatch()!.seqTo).toBe(2);
  first.close();
  const again = make(new SqliteOutboxStore(path)).box;
  expect(again.appliedFilters()).toEqual({ version: 4, rules: [], tunables: { batchMaxRecords: 2 } });
  // claimed ahead in one transaction before the restart: re-sent from there, in batches of the desired size
  expect(again.unacknowledged().map((b) => b.seqTo - b.seqFrom + 1)).toEqual([2, 2, 1]);
  again.close();
});

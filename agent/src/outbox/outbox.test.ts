import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMessage, TelemetryBatch } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import type { StreamRoute } from '../streams.js';
import { MemoryOutboxStore } from './memory-store.js';
import { Outbox, type OutboxOptions } from './outbox.js';
import { ROW_OVERHEAD_BYTES } from './policy.js';
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
    commitWindowMs: 1000,
    batchMaxRecords: 100,
    batchMaxBytes: 100_000,
    compression: 'none',
    now: () => now,
    ...over,
  });
  return { box, advance: (ms: number) => (now += ms) };
}

function drain(box: Outbox): TelemetryBatch[] {
  const out: TelemetryBatch[] = [];
  for (let b = box.claimBatch(); b; b = box.claimBatch()) {
    out.push(decodeMessage(TelemetryBatch, b.payload));
    box.acknowledge(b.seqFrom);
  }
  return out;
}

const sqlite = () => new SqliteOutboxStore(join(mkdtempSync(join(tmpdir(), 'fw-outbox-')), 'o.db'));

describe.each([
  ['memory', () => new MemoryOutboxStore()],
  ['sqlite', sqlite],
])('Outbox over %s', (_name, newStore) => {
  it('calls back only after the group commit, and all readings of the window share it', () => {
    const { box } = make(newStore());
    const done: number[] = [];
    for (let i = 0; i < 10; i++) box.submit(tel, { value: i, ts: 1_000_000 + i }, () => done.push(i));
    expect(done).toEqual([]);
    box.flush();
    expect(done).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    box.close();
  });

  it('forms valid batches with gap-free sequence numbers, priority first, stream order kept', () => {
    const { box } = make(newStore(), { batchMaxRecords: 3 });
    for (let i = 0; i < 4; i++) box.submit(bulk, { value: i, ts: 1 + i }, () => {});
    for (let i = 0; i < 4; i++) box.submit(tel, { value: 10 + i, ts: 1 + i }, () => {});
    box.flush();
    const batches = drain(box);
    const records = batches.flatMap((b) => b.records);
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(records.map((r) => (r.kind === 'reading' ? r.value : -1))).toEqual([10, 11, 12, 13, 0, 1, 2, 3]);
    expect(box.status()).toMatchObject({ depth: 0, lastSeq: 8 });
  });

  it('drops the oldest of the lowest priority at the cap, and sends a loss record upstream', () => {
    const perRow = `"kind":"reading","stream":"s/b","ts":1,"value":0`.length + ROW_OVERHEAD_BYTES;
    const { box } = make(newStore(), { capBytes: perRow * 5 + 20 });
    for (let i = 0; i < 5; i++) box.submit(bulk, { value: i, ts: 1 }, () => {});
    box.flush();
    box.submit(tel, { value: 9, ts: 2 }, () => {});
    box.submit(tel, { value: 8, ts: 3 }, () => {});
    box.flush();
    expect(box.status().dropped.cap).toBeGreaterThanOrEqual(2);
    const records = drain(box).flatMap((b) => b.records);
    const loss = records.find((r) => r.kind === 'loss');
    expect(loss).toMatchObject({ kind: 'loss', stream: 's/b', reason: 'cap', ingestFrom: 1 });
    expect(records.filter((r) => r.kind === 'reading' && r.stream === 's/t').length).toBe(2);
    const keptBulk = records
      .filter((r) => r.kind === 'reading' && r.stream === 's/b')
      .map((r) => (r as { value: number }).value);
    expect(keptBulk).toEqual([0, 1, 2, 3, 4].slice(loss && loss.kind === 'loss' ? loss.count : 0));
  });

  it('widens one loss record per stream while the cap keeps dropping, instead of piling them up', () => {
    const perRow = `"kind":"reading","stream":"s/b","ts":1,"value":0`.length + ROW_OVERHEAD_BYTES;
    const { box } = make(newStore(), { capBytes: perRow * 5 + 400 });
    for (let i = 0; i < 50; i++) {
      box.submit(bulk, { value: i, ts: 1 + i }, () => {});
      box.flush();
    }
    const records = drain(box).flatMap((b) => b.records);
    const losses = records.filter((r) => r.kind === 'loss');
    expect(losses).toHaveLength(1);
    const kept = records.filter((r) => r.kind === 'reading').length;
    expect(losses[0]).toMatchObject({ stream: 's/b', reason: 'cap', count: 50 - kept, ingestFrom: 1, firstTs: 1 });
    expect(box.status().dropped.cap).toBe(50 - kept);
  });

  it('refuses new input at the cap under the refuse policy, changing nothing stored', () => {
    const perRow = `"kind":"reading","stream":"s/t","ts":1,"value":0`.length + ROW_OVERHEAD_BYTES;
    const { box } = make(newStore(), { capBytes: perRow * 3, fullPolicy: 'refuse' });
    const results: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) box.submit(tel, { value: i, ts: 1 }, (err) => results.push(err?.code));
    box.flush();
    expect(results).toEqual([undefined, undefined, undefined, 'E_OUTBOX_FULL', 'E_OUTBOX_FULL']);
    expect(box.status()).toMatchObject({ depth: 3, refused: { E_OUTBOX_FULL: 2 }, dropped: { cap: 0 } });
  });

  it('expires readings past their time-to-live and reports them as lost', () => {
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

  it('keeps a claimed batch until it is acknowledged and hands it out again unchanged', () => {
    const { box } = make(newStore());
    box.submit(tel, { value: 1, ts: 5 }, () => {});
    box.flush();
    const b = box.claimBatch()!;
    expect(box.claimBatch()).toBeNull();
    expect(box.unacknowledged().map((x) => x.payload.equals(b.payload))).toEqual([true]);
    box.acknowledge(b.seqFrom);
    expect(box.unacknowledged()).toEqual([]);
  });
});

it('an SQLite outbox resumes after a restart: batches unchanged, sequence numbers continue', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fw-outbox-')), 'o.db');
  const first = make(new SqliteOutboxStore(path)).box;
  for (let i = 0; i < 5; i++) first.submit(tel, { value: i, ts: 1 }, () => {});
  first.flush();
  const b = first.claimBatch()!;
  for (let i = 0; i < 2; i++) first.submit(tel, { value: 10 + i, ts: 1 }, () => {});
  first.close();
  const again = make(new SqliteOutboxStore(path)).box;
  expect(again.unacknowledged()[0]!.payload.equals(b.payload)).toBe(true);
  again.acknowledge(b.seqFrom);
  const rest = drain(again).flatMap((x) => x.records);
  expect(rest.map((r) => r.seq)).toEqual([6, 7]);
  again.close();
});

it('applies a desired batch size with its filter rules, and keeps both across a restart', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fw-outbox-')), 'o.db');
  const first = make(new SqliteOutboxStore(path)).box;
  first.applyFilters({ version: 4, rules: [], tunables: { batchMaxRecords: 2 } });
  for (let i = 0; i < 5; i++) first.submit(tel, { value: i, ts: 1 }, () => {});
  first.flush();
  expect(first.claimBatch()!.seqTo).toBe(2);
  first.close();
  const again = make(new SqliteOutboxStore(path)).box;
  expect(again.appliedFilters()).toEqual({ version: 4, rules: [], tunables: { batchMaxRecords: 2 } });
  expect(drain(again).map((b) => b.records.length)).toEqual([2, 1]);
  again.close();
});

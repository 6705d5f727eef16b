import { gzipSync } from 'node:zlib';
import { type ChunkRecord, encodeBatchV2, encodeChunk, FleetwaveError } from '@fleetwave/shared';
import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { sqliteFixture } from '../store/database-fixtures.js';
import { TelemetryIngest } from './telemetry-ingest.js';

async function setup() {
  const { db } = await sqliteFixture();
  const store = db.fleet;
  await store.addDevice({ id: 'gw-1', tags: {}, hardware: null, createdAt: 1, tokenHash: 'x', mosquittoHash: 'y' });
  const clean: unknown[] = [];
  const ingest = new TelemetryIngest({
    db,
    now: () => 1000,
    log: pino({ level: 'silent' }),
    onClean: (_d, r) => clean.push(...r),
  });
  return { db, store, ingest, clean };
}

const batch = (seqFrom: number, n: number, device = 'gw-1') => ({
  v: 1,
  device,
  seqFrom,
  seqTo: seqFrom + n - 1,
  sentAt: 5,
  records: Array.from({ length: n }, (_, i) => ({ kind: 'reading', seq: seqFrom + i, stream: 'a/b', ts: 1, value: i })),
});

describe('TelemetryIngest', () => {
  it('stores a batch once, drops re-sent records, accepts gzip, and hands on only new records', async () => {
    const { db, ingest, clean } = await setup();
    expect(await ingest.telemetry('gw-1', Buffer.from(JSON.stringify(batch(1, 3))))).toEqual({
      stored: 3,
      duplicates: 0,
    });
    expect(await ingest.telemetry('gw-1', gzipSync(JSON.stringify(batch(2, 4))))).toEqual({ stored: 2, duplicates: 2 });
    expect((await db.telemetry.read({ after: 0, limit: 100 })).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(clean).toHaveLength(5);
    expect(await ingest.telemetry('gw-1', Buffer.from(JSON.stringify(batch(9, 1))))).toEqual({
      stored: 1,
      duplicates: 0,
    });
    expect(await db.telemetry.missingRanges('gw-1')).toEqual([[6, 8]]);
  });

  it('takes v1 and v2 side by side: the same records reach the store and the backends either way', async () => {
    const one = await setup();
    const two = await setup();
    const records = batch(1, 6).records.map(({ seq: _seq, ...r }) => r as ChunkRecord);
    await one.ingest.telemetry('gw-1', Buffer.from(JSON.stringify(batch(1, 6))));
    const v2 = encodeBatchV2({ device: 'gw-1', seqFrom: 1, sentAt: 5 }, [
      { records: 4, bytes: encodeChunk(records.slice(0, 4)) },
      { records: 2, bytes: encodeChunk(records.slice(4)) },
    ]);
    expect(await two.ingest.telemetry('gw-1', v2)).toEqual({ stored: 6, duplicates: 0 });
    expect(two.clean).toEqual(one.clean);
    expect(await two.db.telemetry.read({ after: 0, limit: 100 })).toEqual(
      await one.db.telemetry.read({ after: 0, limit: 100 }),
    );
    // a v2 re-send of records stored from v1 is a duplicate like any other
    expect(await one.ingest.telemetry('gw-1', v2)).toEqual({ stored: 0, duplicates: 6 });
    const magicOnly = Buffer.from([0x46, 0x57, 0x02, 0x05]);
    await expect(one.ingest.telemetry('gw-1', magicOnly)).rejects.toThrow(FleetwaveError);
  });

  it('rejects a batch for another device and counts it', async () => {
    const { db, ingest } = await setup();
    await expect(ingest.telemetry('gw-1', Buffer.from(JSON.stringify(batch(1, 1, 'gw-2'))))).rejects.toThrow(
      FleetwaveError,
    );
    expect(ingest.rejected.get('gw-1')).toEqual({ E_FORBIDDEN: 1 });
    expect(await db.telemetry.read({ after: 0, limit: 10 })).toEqual([]);
  });

  it('survives any malformed payload: a coded rejection, counted, and nothing stored', async () => {
    const { db, ingest } = await setup();
    const good = JSON.stringify(batch(1, 2));
    const mutated = fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([i, d]) => {
      const b = Buffer.from(good);
      b[i] = (b[i]! + d) % 256;
      return b;
    });
    const payloads = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
      fc.constant(gzipSync(Buffer.alloc(5_000_000, 0x20))),
      fc.constant(Buffer.from([0x1f, 0x8b, 0, 1, 2])),
      mutated,
    );
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(payloads, async (p) => {
        const before = (await db.telemetry.read({ after: 0, limit: 1e6 })).length;
        try {
          await ingest.telemetry('gw-1', p);
        } catch (err) {
          expect(err).toBeInstanceOf(FleetwaveError);
          rejected++;
          expect((await db.telemetry.read({ after: 0, limit: 1e6 })).length).toBe(before);
        }
      }),
      { numRuns: 500 },
    );
    expect(ingest.totals.rejected).toBe(rejected);
    for (const p of [Buffer.from('{'), Buffer.from('[]')])
      expect(() => ingest.presence('gw-1', p)).toThrow(FleetwaveError);
  });
});

describe('reported configuration', () => {
  it('records the applied version, or the rejection with its reason', async () => {
    const { store, ingest } = await setup();
    const report = (r: object) =>
      ingest.reportedConfig('gw-1', Buffer.from(JSON.stringify({ v: 1, device: 'gw-1', ts: 1, ...r })));
    await report({ version: 3, status: 'applied' });
    expect(await store.getDevice('gw-1')).toMatchObject({
      appliedConfigVersion: 3,
      configStatus: 'applied',
      configReason: null,
    });
    await report({ version: 4, status: 'rejected', reason: 'filters.0.deadband.absolute: Too small' });
    expect(await store.getDevice('gw-1')).toMatchObject({
      appliedConfigVersion: 3,
      configStatus: 'rejected',
      configReason: 'version 4: filters.0.deadband.absolute: Too small',
    });
    expect(() => report({ device: 'gw-2', version: 5, status: 'applied' })).toThrow(FleetwaveError);
    expect((await store.getDevice('gw-1'))!.appliedConfigVersion).toBe(3);
  });
});

describe('group commit', () => {
  it('acknowledges batches after one shared commit, and reports a failed commit as transient (not acknowledged)', async () => {
    const { ingest, db } = await setup();
    const results: (string | undefined)[] = [];
    await new Promise<void>((resolve) => {
      let n = 0;
      for (const seq of [1, 3]) {
        ingest.submitTelemetry('gw-1', Buffer.from(JSON.stringify(batch(seq, 2))), (err, r) => {
          results.push(err ? err.code : `${r!.stored}`);
          if (++n === 2) resolve();
        });
      }
    });
    expect(results).toEqual(['2', '2']);
    expect(await db.telemetry.read({ after: 0, limit: 10 })).toHaveLength(4);
    db.telemetry.insertGroups = async () => {
      throw new Error('disk I/O error');
    };
    const failed = await new Promise<{ transient?: boolean; code?: string }>((resolve) =>
      ingest.submitTelemetry('gw-1', Buffer.from(JSON.stringify(batch(9, 1))), (err) => resolve(err ?? {})),
    );
    expect(failed).toMatchObject({ transient: true });
    const malformed = await new Promise<{ transient?: boolean }>((resolve) =>
      ingest.submitTelemetry('gw-1', Buffer.from('{'), (err) => resolve(err ?? {})),
    );
    expect(malformed).toMatchObject({ transient: false });
  });
});

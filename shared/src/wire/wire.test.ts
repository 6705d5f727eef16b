import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FleetwaveError } from '../errors.js';
import { decodeBatchV2, decodeTelemetryPayload, encodeBatchV1, encodeBatchV2, WIRE_V2_MAGIC } from './batch.js';
import { type ChunkRecord, decodeChunk, decodeChunkBody, encodeChunk, encodeChunkBody } from './chunk.js';

const EPOCH_MAX = 8.64e15;
const stream = fc.constantFrom('temp/a', 'temp/b', 'vib/x', 'a.b-c_d/e');
const value = fc.double({ noNaN: true, noDefaultInfinity: true });
const ts = fc.oneof(fc.integer({ min: 0, max: EPOCH_MAX }), fc.integer({ min: 1.7e12, max: 1.7e12 + 1e6 }));
const reading = fc.record(
  {
    kind: fc.constant('reading' as const),
    stream,
    ts,
    value,
    quality: fc.constantFrom('good' as const, 'uncertain' as const, 'bad' as const),
    unit: fc.constantFrom('C', '°C', '', 'm/s²'),
    priority: fc.constantFrom('alert' as const, 'bulk' as const),
  },
  { requiredKeys: ['kind', 'stream', 'ts', 'value'] },
);
const aggregate = fc.record({
  kind: fc.constant('aggregate' as const),
  stream,
  ts,
  from: ts,
  to: ts,
  count: fc.nat(),
  min: value,
  max: value,
  mean: value,
  last: value,
  stddev: value,
});
const loss = fc.record({
  kind: fc.constant('loss' as const),
  stream,
  ts,
  reason: fc.constantFrom('cap' as const, 'ttl' as const),
  count: fc.integer({ min: 1, max: 1e9 }),
  ingestFrom: fc.integer({ min: 1, max: 1e12 }),
  ingestTo: fc.integer({ min: 1, max: 1e12 }),
  firstTs: ts,
  lastTs: ts,
});
/** A run of one group's readings, as a sensor makes them: values random, walking in decimals or constant; timestamps periodic, jittered or anywhere. */
const series = fc
  .record({
    head: reading,
    n: fc.integer({ min: 1, max: 40 }),
    values: fc.oneof(
      fc.array(value, { minLength: 40, maxLength: 40 }),
      fc.array(fc.integer({ min: -500, max: 500 }), { minLength: 40, maxLength: 40 }).map((d) => {
        let m = 21_500;
        return d.map((x) => {
          m += x;
          return m / 100;
        });
      }),
      value.map((v) => Array.from({ length: 40 }, () => v)),
    ),
    times: fc.oneof(
      fc.integer({ min: 0, max: 1e5 }).map((p) => Array.from({ length: 40 }, (_, i) => 1.7e12 + i * p)),
      fc.array(fc.integer({ min: 990, max: 1010 }), { minLength: 40, maxLength: 40 }).map((d) => {
        let t = 1.7e12;
        return d.map((x) => (t += x));
      }),
      fc.array(fc.integer({ min: 0, max: EPOCH_MAX }), { minLength: 40, maxLength: 40 }),
    ),
  })
  .map(({ head, n, values, times }) =>
    Array.from({ length: n }, (_, i) => ({ ...head, ts: times[i]!, value: values[i]! }) as ChunkRecord),
  );
const records = fc
  .tuple(fc.array(series, { minLength: 1, maxLength: 4 }), fc.array(fc.oneof(aggregate, loss), { maxLength: 4 }))
  .map(([runs, others]) => {
    // interleave the runs as streams arrive, then the other records
    const out: ChunkRecord[] = [];
    for (let i = 0; out.length < runs.reduce((s, r) => s + r.length, 0); i++) {
      for (const r of runs) if (r[i]) out.push(r[i]!);
    }
    return [...out, ...(others as ChunkRecord[])];
  });

/**
 * The order a chunk returns records in: readings by group as first seen (a stream's run of readings with the same
 * quality, priority and unit), then the rest.
 */
function chunkOrder(recs: readonly ChunkRecord[]): ChunkRecord[] {
  const groups: ChunkRecord[][] = [];
  const current = new Map<string, { key: string; list: ChunkRecord[] }>();
  const rest: ChunkRecord[] = [];
  for (const r of recs) {
    if (r.kind !== 'reading') {
      rest.push(r);
      continue;
    }
    const key = JSON.stringify([r.quality, r.priority, r.unit]);
    const g = current.get(r.stream);
    if (g && g.key === key) g.list.push(r);
    else {
      const list = [r];
      groups.push(list);
      current.set(r.stream, { key, list });
    }
  }
  return [...groups.flat(), ...rest];
}

/** JSON drops -0; compare what JSON can carry for the JSON-coded kinds, exact bits for readings. */
const jsonSafe = (r: ChunkRecord) => (r.kind === 'reading' ? r : JSON.parse(JSON.stringify(r)));

describe('wire format v2', () => {
  it('decode(encode(x)) = x for every value: ±0, subnormals, extremes, large and jumping timestamps', () => {
    fc.assert(
      fc.property(records, (recs) => {
        const back = decodeChunk(encodeChunk(recs)) as ChunkRecord[];
        expect(back).toEqual(chunkOrder(recs).map(jsonSafe));
        for (const [i, r] of chunkOrder(recs).entries()) {
          if (r.kind === 'reading') expect(Object.is((back[i] as typeof r).value, r.value)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('round-trips whole messages of several chunks with sequence numbers by position, through the schema', () => {
    fc.assert(
      fc.property(
        fc.array(records, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        (chunks, seqFrom) => {
          const wire = chunks.map((c) => ({ records: c.length, bytes: encodeChunk(c) }));
          const msg = encodeBatchV2({ device: 'gw-1', seqFrom, sentAt: 5 }, wire);
          const b = decodeTelemetryPayload(msg);
          const expected = chunks
            .flatMap((c) => chunkOrder(c).map(jsonSafe))
            .map((r, i) => ({ seq: seqFrom + i, ...r }));
          expect(b).toEqual({
            v: 1,
            device: 'gw-1',
            seqFrom,
            seqTo: seqFrom + expected.length - 1,
            sentAt: 5,
            records: expected,
          });
          // the v1 JSON of the same records decodes to the same batch (JSON has no -0: v2 keeps a reading's -0, v1 not)
          const v1 = encodeBatchV1(
            { device: 'gw-1', seqFrom, sentAt: 5 },
            chunks.flatMap((c) => chunkOrder(c)),
          );
          expect(decodeTelemetryPayload(v1)).toEqual(JSON.parse(JSON.stringify(b)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('costs a few bytes a reading for a slowly varying periodic sensor', () => {
    const recs: ChunkRecord[] = Array.from({ length: 500 }, (_, i) => ({
      kind: 'reading',
      stream: 'boiler/temp',
      ts: 1_764_000_000_000 + i * 1000,
      value: Math.round((21 + Math.sin(i / 50) * 2) * 10) / 10,
      unit: 'C',
    }));
    const bytes = encodeChunk(recs).length;
    expect(bytes / recs.length).toBeLessThan(1);
  });

  it('refuses malformed messages with a coded error, never another exception', () => {
    const good = encodeBatchV2({ device: 'gw-1', seqFrom: 1, sentAt: 5 }, [
      {
        records: 3,
        bytes: encodeChunk(
          [0, 1, 2].map((i) => ({ kind: 'reading', stream: 's', ts: 10 + i, value: i })) as ChunkRecord[],
        ),
      },
    ]);
    expect(decodeBatchV2(good).records).toHaveLength(3);
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(good.length), (at, xor, cut) => {
        const bad = Buffer.from(good);
        bad[at] = bad[at]! ^ xor;
        for (const input of [bad, good.subarray(0, cut), Buffer.concat([good, Buffer.of(xor)])]) {
          try {
            decodeTelemetryPayload(input);
          } catch (err) {
            expect(err).toBeInstanceOf(FleetwaveError);
          }
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
        try {
          decodeTelemetryPayload(Buffer.concat([WIRE_V2_MAGIC, tail]));
        } catch (err) {
          expect(err).toBeInstanceOf(FleetwaveError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a message whose chunks together inflate past the limit, however small each one is', () => {
    // a well-formed body of 16 JSON records of 65,000 bytes each (about 1 MiB), which deflates to about 1 KB
    const record = Buffer.from(`{"pad":"${'x'.repeat(65_000 - 10)}"}`);
    const len = Buffer.from([(65_000 & 127) | 128, ((65_000 >> 7) & 127) | 128, 65_000 >> 14]);
    const body = Buffer.concat([Buffer.of(0, 1, 2, 16), ...Array.from({ length: 16 }, () => [len, record]).flat()]);
    const bomb = Buffer.concat([Buffer.of(1), deflateRawSync(body)]);
    const chunks = Array.from({ length: 5 }, () => ({ records: 16, bytes: bomb }));
    const msg = encodeBatchV2({ device: 'gw-1', seqFrom: 1, sentAt: 5 }, chunks);
    expect(msg.length).toBeLessThan(10_000);
    expect(() => decodeBatchV2(msg)).toThrow(/does not inflate within/);
  });

  it('refuses a header whose counts disagree with the chunks', () => {
    const chunk = encodeChunk([{ kind: 'reading', stream: 's', ts: 1, value: 1 }]);
    const lie = (h: object) =>
      Buffer.concat([WIRE_V2_MAGIC, Buffer.of(JSON.stringify(h).length), Buffer.from(JSON.stringify(h)), chunk]);
    const head = { v: 2, device: 'gw-1', seqFrom: 1, seqTo: 1, sentAt: 1 };
    expect(decodeBatchV2(lie({ ...head, chunks: [[1, chunk.length]] })).records).toHaveLength(1);
    expect(() => decodeBatchV2(lie({ ...head, seqTo: 2, chunks: [[2, chunk.length]] }))).toThrow(/holds 1 records/);
    expect(() => decodeBatchV2(lie({ ...head, chunks: [[1, chunk.length + 1]] }))).toThrow(/chunk bytes/);
    expect(() => decodeBatchV2(lie({ ...head, seqTo: 3, chunks: [[1, chunk.length]] }))).toThrow(/seqTo/);
  });

  it('matches the published test vectors (shared/wire-v2.md)', () => {
    const vectors = JSON.parse(readFileSync(new URL('../../test-vectors/wire-v2.json', import.meta.url), 'utf8')) as {
      name: string;
      records: ChunkRecord[];
      body: string;
      message: string;
      decoded: unknown;
    }[];
    expect(vectors.length).toBeGreaterThanOrEqual(4);
    for (const v of vectors) {
      expect(encodeChunkBody(v.records).toString('hex'), v.name).toBe(v.body);
      expect(decodeChunkBody(Buffer.from(v.body, 'hex')), v.name).toEqual(chunkOrder(v.records));
      expect(JSON.parse(JSON.stringify(decodeBatchV2(Buffer.from(v.message, 'hex')))), v.name).toEqual(v.decoded);
    }
  });
});

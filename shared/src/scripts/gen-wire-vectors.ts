// Writes shared/test-vectors/wire-v2.json: chunk bodies and whole v2 messages with the records they decode to, for
// a backend in another language to test its decoder against (shared/wire-v2.md). `node shared/dist/scripts/gen-wire-vectors.js`.
import { writeFileSync } from 'node:fs';
import { decodeBatchV2, encodeBatchV2 } from '../wire/batch.js';
import { type ChunkRecord, encodeChunk, encodeChunkBody } from '../wire/chunk.js';

const t0 = 1_764_000_000_000;
const cases: { name: string; records: ChunkRecord[] }[] = [
  {
    name: 'periodic readings of one stream, decimal values (scale 1)',
    records: [21.5, 21.6, 21.6, 21.7, 21.5].map((value, i) => ({
      kind: 'reading',
      stream: 'temp/a',
      ts: t0 + i * 1000,
      value,
      unit: 'C',
    })),
  },
  {
    name: 'values that are no short decimal: XOR of the previous value (0.1 + 0.2, a subnormal, pi, 1e300, pi again)',
    records: [0.1 + 0.2, 5e-324, Math.PI, 1e300, Math.PI].map((value, i) => ({
      kind: 'reading',
      stream: 'x',
      ts: t0 + i * 10,
      value,
    })),
  },
  {
    name: 'two streams interleaved, quality and alert priority: grouped by stream, quality, priority and unit',
    records: [
      { kind: 'reading', stream: 'a', ts: t0, value: 1 },
      { kind: 'reading', stream: 'b', ts: t0 + 1, value: 100, quality: 'uncertain' },
      { kind: 'reading', stream: 'a', ts: t0 + 2, value: 2 },
      { kind: 'reading', stream: 'a', ts: t0 + 3, value: 250.25, priority: 'alert' },
      { kind: 'reading', stream: 'b', ts: t0 + 4, value: 101, quality: 'uncertain' },
    ],
  },
  {
    name: 'an aggregate and a loss record: JSON records after the reading groups',
    records: [
      {
        kind: 'aggregate',
        stream: 'vib/x',
        ts: t0 + 60_000,
        from: t0,
        to: t0 + 60_000,
        count: 600,
        min: -1.5,
        max: 2.25,
        mean: 0.1,
        last: 0.5,
        stddev: 0.75,
        quantiles: { p50: 0.1 },
      },
      { kind: 'reading', stream: 'vib/x', ts: t0, value: 0.5 },
      {
        kind: 'loss',
        stream: 'vib/x',
        ts: t0 + 1,
        reason: 'cap',
        count: 12,
        ingestFrom: 65536,
        ingestTo: 65547,
        firstTs: t0 - 12_000,
        lastTs: t0 - 1000,
      },
    ],
  },
  {
    name: 'timestamps too far apart for delta-of-delta: raw timestamps',
    records: [
      { kind: 'reading', stream: 'far', ts: 0, value: 1 },
      { kind: 'reading', stream: 'far', ts: 8.64e15, value: 2 },
    ],
  },
];

const vectors = cases.map(({ name, records }) => {
  const chunk = encodeChunk(records);
  const message = encodeBatchV2({ device: 'gw-1', seqFrom: 100, sentAt: t0 + 5000 }, [
    { records: records.length, bytes: chunk },
  ]);
  return {
    name,
    records,
    body: encodeChunkBody(records).toString('hex'),
    message: message.toString('hex'),
    decoded: JSON.parse(JSON.stringify(decodeBatchV2(message))),
  };
});
writeFileSync(new URL('../../test-vectors/wire-v2.json', import.meta.url), `${JSON.stringify(vectors, null, 2)}\n`);
console.log(`wrote ${vectors.length} vectors`);

import { z } from 'zod';
import { Count, DeviceId, EpochMs, Priority, Quality, Sequence, ShortText, StreamName } from './common.js';

const finite = z.number();

/** One sensor reading as it reached the agent (after its filters). */
export const ReadingRecord = z.strictObject({
  kind: z.literal('reading'),
  seq: Sequence,
  stream: StreamName,
  ts: EpochMs,
  value: finite,
  quality: Quality.optional(),
  unit: z.string().max(32).optional(),
  priority: Priority.optional(),
});

/** A windowed aggregate produced by an edge filter. */
export const AggregateRecord = z.strictObject({
  kind: z.literal('aggregate'),
  seq: Sequence,
  stream: StreamName,
  ts: EpochMs,
  from: EpochMs,
  to: EpochMs,
  count: Count,
  min: finite,
  max: finite,
  mean: finite,
  last: finite,
  /** Population standard deviation of the window's values. */
  stddev: finite,
  /** Readings that arrived after the window had closed (not part of this or any aggregate). */
  late: Count.optional(),
  quantiles: z.record(z.string().regex(/^p\d{1,2}(\.\d+)?$/), finite).optional(),
  unit: z.string().max(32).optional(),
});

/**
 * What the agent lost, so a loss is visible upstream (DESIGN invariant 2). Lost readings never got a wire sequence
 * number; `ingestFrom`/`ingestTo` is the range of the agent's local ingest ids they had.
 */
export const LossRecord = z.strictObject({
  kind: z.literal('loss'),
  seq: Sequence,
  stream: StreamName,
  ts: EpochMs,
  reason: z.enum(['cap', 'ttl']),
  count: Count.min(1),
  ingestFrom: Sequence,
  ingestTo: Sequence,
  firstTs: EpochMs,
  lastTs: EpochMs,
});

export const TelemetryRecord = z.discriminatedUnion('kind', [ReadingRecord, AggregateRecord, LossRecord]);
export type TelemetryRecord = z.infer<typeof TelemetryRecord>;

/** A batch as one MQTT message: records with consecutive per-device sequence numbers seqFrom..seqTo. */
export const TelemetryBatch = z
  .strictObject({
    v: z.literal(1),
    device: DeviceId,
    seqFrom: Sequence,
    seqTo: Sequence,
    sentAt: EpochMs,
    records: z.array(TelemetryRecord).min(1).max(10_000),
  })
  .superRefine((b, ctx) => {
    if (b.seqTo - b.seqFrom + 1 !== b.records.length) {
      ctx.addIssue({ code: 'custom', path: ['seqTo'], message: 'seqTo - seqFrom + 1 must equal the record count' });
      return;
    }
    b.records.forEach((r, i) => {
      if (r.seq !== b.seqFrom + i) {
        ctx.addIssue({ code: 'custom', path: ['records', i, 'seq'], message: `expected seq ${b.seqFrom + i}` });
      }
    });
  });
export type TelemetryBatch = z.infer<typeof TelemetryBatch>;

/** A reading as a sensor may publish it as JSON on the agent's local listener (a bare number is also accepted). */
export const SensorPayload = z.strictObject({
  value: finite,
  ts: EpochMs.optional(),
  quality: Quality.optional(),
  unit: z.string().max(32).optional(),
});
export type SensorPayload = z.infer<typeof SensorPayload>;

/** The agent's backlog, published periodically and shown by `fleetwave-agent status`. */
export const BacklogReport = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  ts: EpochMs,
  depth: Count,
  bytes: Count,
  oldestAgeMs: Count,
  inflightBatches: Count,
  lastSeq: Count,
  dropped: z.strictObject({ cap: Count, ttl: Count }),
  refused: z.record(ShortText, Count),
  accepted: Count,
  /** Readings the edge filters dropped, by reason (validate.range, deadband, swingingDoor, …). */
  filtered: z.record(ShortText, Count).default({}),
  /** The desired-config version whose filter rules are in force (0: the config file's). */
  filtersVersion: Count.default(0),
  /** The data directory's space: while `full`, new readings are refused and the outbox drains (agent/README.md). */
  storage: z
    .strictObject({ full: z.boolean(), freeBytes: Count, reserveBytes: Count, since: EpochMs.optional() })
    .optional(),
});
export type BacklogReport = z.infer<typeof BacklogReport>;

/**
 * One clean record as the controller hands it to backends: validated, deduplicated by (device, seq), with the
 * controller's cursor (global and increasing: the resume point of the HTTP stream). A line of the NDJSON stream.
 */
export const CleanRecord = z.strictObject({
  cursor: Sequence,
  device: DeviceId,
  receivedAt: EpochMs,
  record: TelemetryRecord,
});
export type CleanRecord = z.infer<typeof CleanRecord>;

/** A message on `{root}/clean/{device}/telemetry`: the new records of one ingested batch. */
export const CleanTelemetry = z.strictObject({
  v: z.literal(1),
  device: DeviceId,
  records: z.array(CleanRecord).min(1).max(10_000),
});
export type CleanTelemetry = z.infer<typeof CleanTelemetry>;

/**
 * The JSON header of a telemetry message in wire format v2 (shared/wire-v2.md): the batch's sequence range and, for
 * each chunk that follows the header, [records, bytes]. Chunk i's records are numbered from seqFrom plus the
 * records of the chunks before it.
 */
export const TelemetryBatchV2Header = z
  .strictObject({
    v: z.literal(2),
    device: DeviceId,
    seqFrom: Sequence,
    seqTo: Sequence,
    sentAt: EpochMs,
    chunks: z
      .array(z.tuple([Count.min(1).max(10_000), Count.min(2).max(4 * 1024 * 1024)]))
      .min(1)
      .max(10_000),
  })
  .superRefine((h, ctx) => {
    const records = h.chunks.reduce((s, c) => s + c[0], 0);
    if (records > 10_000) ctx.addIssue({ code: 'custom', path: ['chunks'], message: 'at most 10,000 records' });
    if (h.seqTo - h.seqFrom + 1 !== records) {
      ctx.addIssue({ code: 'custom', path: ['seqTo'], message: "seqTo - seqFrom + 1 must equal the chunks' records" });
    }
  });
export type TelemetryBatchV2Header = z.infer<typeof TelemetryBatchV2Header>;

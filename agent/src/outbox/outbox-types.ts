import type { FilterRule, FleetwaveError } from '@fleetwave/shared';
import type { Reading } from '../reading.js';
import type { StreamRoute } from '../streams.js';
import type { WireFormat } from './batches.js';

export interface OutboxOptions {
  device: string;
  capBytes: number;
  fullPolicy: 'drop-oldest' | 'refuse';
  /** A group is committed when its oldest reading has waited this long: a sensor's PUBACK waits at most this. */
  maxAckDelayMs: number;
  /** … or at once when it holds this many readings (default 250). */
  maxGroup?: number;
  batchMaxRecords: number;
  batchMaxBytes: number;
  /** v2: chunks sent as stored (default). v1: JSON, for a controller that predates v2 (gzip optional). */
  format?: WireFormat;
  compression?: 'none' | 'gzip';
  now: () => number;
  /** Called after every commit that added or claimed records (the uplink pumps on it). */
  onCommitted?: () => void;
  /** How many batches the uplink would send right now (free in-flight slots while connected, else 0). */
  wantBatches?: () => number;
  /** Filter rules from the config file; rules applied from the cloud (persisted) take precedence. */
  filters?: readonly FilterRule[];
  /** The data directory's space (storage/space.ts): while full, readings are refused and the outbox only drains. */
  space?: SpaceGate;
}

/** What the outbox needs of the disk-space state. */
export interface SpaceGate {
  readonly isFull: boolean;
  /** Looks at free space (rate-limited) and returns whether the disk counts as full. */
  check(): boolean;
  /** A write failed: true when for lack of space (the state is then full). */
  noteError(err: unknown, where: string): boolean;
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
  /** Chunks claimed for sending and not yet acknowledged. */
  batches: number;
  lastSeq: number;
  dropped: { cap: number; ttl: number };
  refused: Record<string, number>;
  accepted: number;
  filtered: Record<string, number>;
}

export interface Pending {
  route: StreamRoute;
  reading: Reading;
  done: Committed;
  /** The agent's own reading (health): not counted as accepted from sensors. */
  internal?: boolean;
}

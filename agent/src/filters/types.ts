export interface Sample {
  ts: number;
  value: number;
  quality?: 'good' | 'uncertain' | 'bad';
  unit?: string;
}

export interface Aggregate {
  from: number;
  to: number;
  count: number;
  min: number;
  max: number;
  mean: number;
  last: number;
  stddev: number;
  late: number;
  quantiles: Record<string, number>;
}

export type Emission = { kind: 'reading'; sample: Sample; alert: boolean } | { kind: 'aggregate'; agg: Aggregate };

/** Why a filter dropped a reading. Validation drops are refusals; the others are the reduction working. */
export type DropReason =
  | 'validate.range'
  | 'validate.unit'
  | 'validate.quality'
  | 'heartbeat.minInterval'
  | 'deadband'
  | 'swingingDoor'
  | 'swingingDoor.minInterval'
  | 'outOfOrder'
  | 'window';

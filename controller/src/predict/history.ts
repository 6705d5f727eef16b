import { readFileSync } from 'node:fs';
import { FleetwaveError } from '@fleetwave/shared';

/** One device's health history: sample times (ms, or cycles for run-to-failure data) and metric columns. */
export interface Series {
  device: string;
  t: number[];
  metrics: Record<string, number[]>;
}

/**
 * Health metrics that count events (cumulative in the agent's reports, starting again from zero when the agent or
 * the machine restarts). History keeps them unwrapped — a drop is a reset and the count goes on from where it was —
 * so windows over them count events and a reboot does not look like negative events.
 */
export const COUNTER_METRICS: ReadonlySet<string> = new Set([
  'agentRestarts',
  'reconnects',
  'mmcErrors',
  'linkChanges',
  'underVoltageEvents',
]);

/** A cumulative counter made monotonic: after a drop (a reset), the count carries on from the last value before it. */
export function unwrapCounter(values: readonly number[]): number[] {
  let offset = 0;
  let prev: number | undefined;
  return values.map((v) => {
    if (prev !== undefined && v < prev) offset += prev;
    prev = v;
    return v + offset;
  });
}

export interface Failure {
  device: string;
  time: number;
  mode: string;
}

export interface History {
  metrics: string[];
  series: Series[];
  /** Whether time is a number of cycles/steps (run-to-failure data) rather than a date. */
  cycles: boolean;
}

const fail = (file: string, line: number, msg: string): never => {
  throw new FleetwaveError('E_CONFIG_INVALID', `${file}:${line}: ${msg}`);
};

/** A time cell: ISO 8601 date, epoch milliseconds (≥ 10^11) or a plain number of cycles. */
function parseTime(cell: string, file: string, line: number): { value: number; cycles: boolean } {
  if (/^-?\d+(\.\d+)?$/.test(cell)) {
    const n = Number(cell);
    return { value: n, cycles: Math.abs(n) < 1e11 };
  }
  const ms = Date.parse(cell);
  if (Number.isNaN(ms)) fail(file, line, `time "${cell}" is not an ISO 8601 date, epoch milliseconds or a number`);
  return { value: ms, cycles: false };
}

function rowsOf(text: string, file: string): { header: string[]; rows: { cells: string[]; line: number }[] } {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  if (header[0] !== 'device' || header[1] !== 'time') fail(file, 1, 'the header must start with device,time');
  const rows: { cells: string[]; line: number }[] = [];
  lines.slice(1).forEach((l, i) => {
    if (l.trim() === '') return;
    const cells = l.split(',').map((c) => c.trim());
    if (cells.length !== header.length) fail(file, i + 2, `${cells.length} cells, the header has ${header.length}`);
    rows.push({ cells, line: i + 2 });
  });
  return { header, rows };
}

/**
 * The generic history CSV: `device,time,<metric>,…` (one row per sample; empty cells are missing and carried forward).
 * Rows may come in any order; each device's samples are sorted by time. Columns named like the agent's counters
 * (COUNTER_METRICS) are unwrapped.
 */
export function parseHistoryCsv(text: string, file = 'history.csv'): History {
  const { header, rows } = rowsOf(text, file);
  const metrics = header.slice(2);
  if (metrics.length === 0) fail(file, 1, 'no metric columns after device,time');
  const byDevice = new Map<string, { t: number; values: (number | undefined)[] }[]>();
  let cycles: boolean | undefined;
  for (const { cells, line } of rows) {
    const device = cells[0]!;
    if (!/^[a-zA-Z0-9:_.-]{1,128}$/.test(device)) fail(file, line, `device "${device}" is not a device id`);
    const time = parseTime(cells[1]!, file, line);
    if (cycles !== undefined && cycles !== time.cycles) fail(file, line, 'times mix dates and cycle numbers');
    cycles = time.cycles;
    const values = cells.slice(2).map((c, j) => {
      if (c === '') return undefined;
      const n = Number(c);
      if (!Number.isFinite(n)) fail(file, line, `${metrics[j]} "${c}" is not a number`);
      return n;
    });
    const list = byDevice.get(device) ?? [];
    list.push({ t: time.value, values });
    byDevice.set(device, list);
  }
  const series: Series[] = [];
  for (const [device, list] of byDevice) {
    list.sort((a, b) => a.t - b.t);
    const s: Series = { device, t: list.map((r) => r.t), metrics: {} };
    metrics.forEach((m, j) => {
      const first = list.find((r) => r.values[j] !== undefined)?.values[j] ?? 0;
      let last = first;
      const values = list.map((r) => (last = r.values[j] ?? last));
      s.metrics[m] = COUNTER_METRICS.has(m) ? unwrapCounter(values) : values;
    });
    series.push(s);
  }
  return { metrics, series, cycles: cycles ?? false };
}

/** The failures CSV: `device,time[,mode]` — when each failed (or was replaced) device failed, and how if known. */
export function parseFailuresCsv(text: string, file = 'failures.csv'): Failure[] {
  const { header, rows } = rowsOf(text, file);
  const hasMode = header[2] === 'mode';
  return rows.map(({ cells, line }) => ({
    device: cells[0]!,
    time: parseTime(cells[1]!, file, line).value,
    mode: (hasMode && cells[2]) || 'failure',
  }));
}

export function readHistory(file: string): History {
  return parseHistoryCsv(read(file), file);
}

export function readFailures(file: string): Failure[] {
  return parseFailuresCsv(read(file), file);
}

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_READ', `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Writes a history in the generic CSV format (times as ISO dates, or cycle numbers). */
export function historyCsv(h: History): string {
  const out = [`device,time,${h.metrics.join(',')}`];
  for (const s of h.series) {
    s.t.forEach((t, i) => {
      const time = h.cycles ? String(t) : new Date(t).toISOString();
      out.push(`${s.device},${time},${h.metrics.map((m) => round(s.metrics[m]![i]!)).join(',')}`);
    });
  }
  return `${out.join('\n')}\n`;
}

export function failuresCsv(f: readonly Failure[], cycles = false): string {
  return `device,time,mode\n${f.map((x) => `${x.device},${cycles ? x.time : new Date(x.time).toISOString()},${x.mode}`).join('\n')}\n`;
}

const round = (n: number) => String(Math.round(n * 1000) / 1000);

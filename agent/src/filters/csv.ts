import { FleetwaveError } from '@fleetwave/shared';
import type { Sample } from './types.js';

/**
 * Reads `ts,stream,value` CSV (a header line first; ts in epoch milliseconds or ISO 8601) into samples by stream.
 * Errors name the line.
 */
export function parseReadingsCsv(text: string, source = 'input'): Map<string, Sample[]> {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new FleetwaveError('E_CONFIG_INVALID', `${source}:1: the header must name ts, stream and value`);
    return i;
  };
  const [its, istream, ivalue] = [col('ts'), col('stream'), col('value')];
  const out = new Map<string, Sample[]>();
  lines.slice(1).forEach((line, i) => {
    if (line.trim() === '') return;
    const cells = line.split(',');
    const rawTs = cells[its]?.trim() ?? '';
    const ts = /^\d+$/.test(rawTs) ? Number(rawTs) : Date.parse(rawTs);
    const value = Number(cells[ivalue]);
    const stream = cells[istream]?.trim() ?? '';
    if (!Number.isFinite(ts) || !Number.isFinite(value) || stream === '') {
      throw new FleetwaveError('E_CONFIG_INVALID', `${source}:${i + 2}: expected ts,stream,value, got "${line}"`);
    }
    const list = out.get(stream);
    if (list) list.push({ ts, value });
    else out.set(stream, [{ ts, value }]);
  });
  return out;
}

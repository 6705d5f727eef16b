import { readFileSync } from 'node:fs';
import { AgentConfig, FilterRulesFile, FleetwaveError, parseYamlWith } from '@fleetwave/shared';
import { parseReadingsCsv } from './csv.js';
import { replayStream, type StreamReplay } from './replay.js';

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FleetwaveError('E_CONFIG_READ', `cannot read ${path}: ${(err as Error).message}`);
  }
}

const num = (x: number | null, digits = 4) => (x === null ? '-' : Number(x.toPrecision(digits)).toString());

export function formatReplay(rows: readonly StreamReplay[]): string {
  const head = ['stream', 'rule', 'in', 'out', 'aggregates', 'reduction', 'max error', 'rms error', 'dropped'];
  const body = rows.map((r) => [
    r.stream,
    r.rule,
    String(r.readingsIn),
    String(r.readingsOut),
    String(r.aggregatesOut),
    `${r.reduction.toFixed(1)}x`,
    num(r.maxError),
    num(r.rmsError),
    Object.entries(r.dropped)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || '-',
  ]);
  const tin = rows.reduce((s, r) => s + r.readingsIn, 0);
  const tout = rows.reduce((s, r) => s + r.readingsOut + r.aggregatesOut, 0);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[fmt(head), ...body.map(fmt)].join('\n')}\n\ntotal: ${tin} readings in, ${tout} records out, ${(tin / Math.max(1, tout)).toFixed(1)}x reduction\n`;
}

/** `fleetwave-agent filters test`: replays a CSV through the rules of a rules file (or an agent config file). */
export function filtersTest(rulesPath: string, inputPath: string, json: boolean): string {
  const text = read(rulesPath);
  const rules = /^device\s*:/m.test(text)
    ? parseYamlWith(AgentConfig, text, rulesPath).filters
    : parseYamlWith(FilterRulesFile, text, rulesPath).filters;
  const streams = parseReadingsCsv(read(inputPath), inputPath);
  const rows = [...streams].map(([stream, samples]) => replayStream(rules, stream, samples));
  return json ? `${JSON.stringify(rows, null, 2)}\n` : formatReplay(rows);
}

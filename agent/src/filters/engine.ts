import type { FilterRule } from '@fleetwave/shared';
import { emissionRecord, type OutboxRecord } from '../outbox/policy.js';
import type { Reading } from '../reading.js';
import type { StreamRoute } from '../streams.js';
import { applyRule, finishRule, initialState, type StreamState, tickRule } from './rule.js';
import type { DropReason, Emission } from './types.js';

function globToRegExp(glob: string): RegExp {
  const parts = glob.split('/').map((s) => (s === '**' ? '.+' : s === '*' ? '[^/]+' : s.replace(/[.]/g, '\\.')));
  return new RegExp(`^${parts.join('/')}$`);
}

/** The first rule whose match selects the stream (`*` one segment, `**` the rest). */
export function ruleFor(rules: readonly FilterRule[], stream: string): FilterRule | undefined {
  return rules.find((r) => globToRegExp(r.match).test(stream));
}

interface StreamEntry {
  rule: FilterRule;
  route: StreamRoute;
  state: StreamState;
}

/**
 * Runs every stream's readings through its filter rule and keeps the per-stream state. The outbox calls it inside
 * its commit transaction and persists the states it marks dirty in the same transaction, so a crash can neither lose
 * a reading a filter was holding nor emit one twice. A failed transaction calls rollback() to restore the states.
 */
export class FilterEngine {
  private rules: { re: RegExp; rule: FilterRule }[] = [];
  private readonly streams = new Map<string, StreamEntry | null>();
  private readonly before = new Map<string, StreamState | undefined>();
  /** States handed out by takeDirty whose transaction has not been settled yet (its commit may still fail). */
  private readonly taken = new Map<string, StreamState | undefined>();
  readonly dropped: Partial<Record<DropReason, number>> = {};

  constructor(
    rules: readonly FilterRule[],
    private persisted: Map<string, string> = new Map(),
  ) {
    this.setRules(rules);
  }

  private setRules(rules: readonly FilterRule[]): void {
    this.rules = rules.map((rule) => ({ re: globToRegExp(rule.match), rule }));
    this.streams.clear();
  }

  private entry(route: StreamRoute): StreamEntry | null {
    const known = this.streams.get(route.stream);
    if (known !== undefined) return known;
    const rule = this.rules.find((r) => r.re.test(route.stream))?.rule;
    let entry: StreamEntry | null = null;
    if (rule) {
      const saved = this.persisted.get(route.stream);
      this.persisted.delete(route.stream);
      entry = { rule, route, state: saved ? (JSON.parse(saved) as StreamState) : initialState(rule) };
    }
    this.streams.set(route.stream, entry);
    return entry;
  }

  private update(stream: string, e: StreamEntry, state: StreamState): void {
    if (state === e.state) return;
    if (!this.before.has(stream)) this.before.set(stream, e.state);
    e.state = state;
  }

  private rows(route: StreamRoute, out: Emission[]): OutboxRecord[] {
    return out.map((em) => emissionRecord(route, em));
  }

  /** The rows a reading produces (none when a filter dropped or holds it). */
  process(route: StreamRoute, reading: Reading): OutboxRecord[] {
    const e = this.entry(route);
    if (!e) return [emissionRecord(route, { kind: 'reading', sample: reading, alert: false })];
    const r = applyRule(e.rule, e.state, reading);
    this.update(route.stream, e, r.state);
    if (r.dropped) this.dropped[r.dropped] = (this.dropped[r.dropped] ?? 0) + 1;
    const rows = this.rows(route, r.out);
    if (e.rule.mirrorRaw) {
      const raw: StreamRoute = { stream: `_raw/${route.stream}`, priority: 'bulk', rank: 3, ttlMs: route.ttlMs };
      rows.push(emissionRecord(raw, { kind: 'reading', sample: reading, alert: false }));
    }
    return rows;
  }

  /** Rows that time alone produces: closed windows, held readings archived after maxInterval. */
  tick(now: number): OutboxRecord[] {
    const rows: OutboxRecord[] = [];
    for (const [stream, e] of this.streams) {
      if (!e) continue;
      const r = tickRule(e.rule, e.state, now);
      this.update(stream, e, r.state);
      rows.push(...this.rows(e.route, r.out));
    }
    return rows;
  }

  /** Replaces the rules: everything the old rules held is emitted first, then every stream starts afresh. */
  replace(rules: readonly FilterRule[]): OutboxRecord[] {
    const rows: OutboxRecord[] = [];
    for (const [stream, e] of this.streams) {
      if (!e) continue;
      rows.push(...this.rows(e.route, finishRule(e.rule, e.state)));
      this.before.set(stream, e.state);
    }
    this.setRules(rules);
    this.persisted = new Map();
    return rows;
  }

  /** States changed since the last call, as [stream, JSON] (null: delete), for the same transaction as the rows. */
  takeDirty(): [string, string | null][] {
    const out: [string, string | null][] = [];
    for (const stream of this.before.keys()) {
      const e = this.streams.get(stream);
      out.push([stream, e ? JSON.stringify(e.state) : null]);
    }
    for (const [stream, state] of this.before) if (!this.taken.has(stream)) this.taken.set(stream, state);
    this.before.clear();
    return out;
  }

  /** The transaction that persisted the states from takeDirty committed: rollback no longer goes behind them. */
  settle(): void {
    this.taken.clear();
  }

  /**
   * Restores the states as they were before the failed transaction, also where takeDirty already handed them out
   * (the commit itself can fail, e.g. on a full disk).
   */
  rollback(): void {
    for (const [stream, state] of [...this.before, ...this.taken]) {
      const e = this.streams.get(stream);
      if (e && state) e.state = state;
    }
    this.before.clear();
    this.taken.clear();
  }
}

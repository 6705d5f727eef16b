import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ACTIVE_STAGES,
  loadUpdateState,
  nextStage,
  STAGE_EVENTS,
  STAGES,
  TERMINAL_STAGES,
  transitions,
  UNCOUNTED_STAGES,
} from './state.js';

describe('the update state machine table', () => {
  it('gives every non-terminal stage a way forward and a way out on failure', () => {
    for (const s of STAGES.filter((x) => !TERMINAL_STAGES.includes(x))) {
      expect(
        transitions.some((t) => t.from === s && t.on === 'ok'),
        s,
      ).toBe(true);
      expect(
        transitions.some((t) => t.from === s && t.on === 'fail'),
        s,
      ).toBe(true);
    }
    for (const s of TERMINAL_STAGES)
      expect(
        transitions.some((t) => t.from === s),
        s,
      ).toBe(false);
  });

  it('reaches every stage from verifying', () => {
    const seen = new Set(['verifying']);
    for (let changed = true; changed; ) {
      changed = false;
      for (const t of transitions) {
        if (seen.has(t.from) && !seen.has(t.to)) {
          seen.add(t.to);
          changed = true;
        }
      }
    }
    expect([...seen].sort()).toEqual([...STAGES].sort());
  });

  it('never fails from a stage where the new version may be active without rolling back', () => {
    for (const s of ['activating', 'health-checking', 'committing'] as const)
      expect(nextStage(s, 'fail')).toBe('rolling-back');
  });

  it('keeps the persisted stage names (a wire format)', () => {
    expect(STAGES).toEqual([
      'verifying',
      'downloading',
      'installing',
      'awaiting-activation',
      'activating',
      'health-checking',
      'committing',
      'rolling-back',
      'succeeded',
      'failed',
      'rejected',
    ]);
  });

  it('ends a loop in every non-terminal stage: FAILED before activation, a rollback where the new version may run', () => {
    for (const st of STAGES.filter((x) => !TERMINAL_STAGES.includes(x))) {
      const to = nextStage(st, 'loop');
      if (['activating', 'health-checking', 'committing'].includes(st)) expect(to, st).toBe('rolling-back');
      else expect(to, st).toBe('failed');
    }
  });

  it('takes cancel only before activation, restarts only where the new version may run, skip only when verifying', () => {
    const froms = (on: string) => transitions.filter((t) => t.on === on).map((t) => t.from);
    expect(froms('cancel')).toEqual(['verifying', 'downloading', 'installing', 'awaiting-activation']);
    for (const e of ['restart-active', 'restart-fell-back', 'restart-inactive'])
      expect(froms(e)).toEqual(ACTIVE_STAGES);
    expect(froms('skip')).toEqual(['verifying']);
    expect(nextStage('verifying', 'skip')).toBe('succeeded');
    expect(nextStage('health-checking', 'restart-fell-back')).toBe('rolling-back');
    // every event is used, and no (stage, event) pair has two targets
    for (const e of STAGE_EVENTS) expect(froms(e).length, e).toBeGreaterThan(0);
    const pairs = transitions.map((t) => `${t.from}/${t.on}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    expect(UNCOUNTED_STAGES).toEqual(['awaiting-activation']);
  });
});

describe('the persisted update state', () => {
  const file = (content: unknown) => {
    const path = join(mkdtempSync(join(tmpdir(), 'fw-state-')), 'state.json');
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  const v2 = {
    v: 2,
    jobId: 'job-1',
    executionNumber: 1,
    versionNumber: 3,
    purpose: 'update',
    manifest: null,
    stage: 'rejected',
    visits: { verifying: 1 },
    previousVersion: null,
    slot: {},
    code: 'E_SCHEMA',
    reason: 'no',
    updatedAt: 1,
  };

  it('reads its own version, migrates version 1 (activations become visits), and refuses others with what to do', () => {
    expect(loadUpdateState(file(v2))).toMatchObject({ v: 2, jobId: 'job-1', visits: { verifying: 1 } });
    const { visits: _v, ...v1 } = v2;
    expect(loadUpdateState(file({ ...v1, v: 1, attempts: 2, stage: 'rejected', report: null }))).toMatchObject({
      v: 2,
      visits: { activating: 2 },
    });
    expect(() => loadUpdateState(file({ ...v2, v: 3 }))).toThrow(
      /version 3; this agent reads versions 1 and 2: run the agent that wrote it, or move the file away/,
    );
    expect(() => loadUpdateState(file({ ...v2, v: undefined }))).toThrow(/version undefined/);
    expect(() => loadUpdateState(file('{"v":2,'))).toThrow(/cannot be read as update state/);
    expect(() => loadUpdateState(file({ ...v2, stage: 'dancing' }))).toThrow(/stage/);
    expect(() => loadUpdateState(file({ ...v2, jobId: '../x' }))).toThrow(/jobId/);
    expect(loadUpdateState(join(tmpdir(), 'fw-no-such-dir', 'state.json'))).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { nextStage, STAGES, TERMINAL_STAGES, transitions } from './state.js';

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
});

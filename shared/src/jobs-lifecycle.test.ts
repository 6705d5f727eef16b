import { describe, expect, it } from 'vitest';
import { assertTransition, canTransition, jobStatusRules, jobTransitions } from './jobs-lifecycle.js';
import { JobStatus } from './schemas/jobs.js';

const statuses = JobStatus.options;

describe('job status lifecycle table', () => {
  it('has no way out of a terminal status and a way out of every other', () => {
    for (const s of statuses) {
      const out = jobTransitions.filter((t) => t.from === s);
      expect(out.length === 0, s).toBe(jobStatusRules[s].terminal);
    }
  });

  it('reaches every status from QUEUED', () => {
    const seen = new Set<string>(['QUEUED']);
    let grew = true;
    while (grew) {
      grew = false;
      for (const t of jobTransitions) if (seen.has(t.from) && !seen.has(t.to)) grew = seen.add(t.to).size > 0;
    }
    expect([...seen].sort()).toEqual([...statuses].sort());
  });

  it('lets devices set only IN_PROGRESS, SUCCEEDED, FAILED and REJECTED', () => {
    const byDevice = new Set(jobTransitions.filter((t) => t.by === 'device').map((t) => t.to));
    expect([...byDevice].sort()).toEqual(['FAILED', 'IN_PROGRESS', 'REJECTED', 'SUCCEEDED']);
  });

  it('refuses SUCCEEDED → IN_PROGRESS with E_JOB_TRANSITION', () => {
    expect(canTransition('SUCCEEDED', 'IN_PROGRESS', 'device')).toBe(false);
    expect(() => assertTransition('SUCCEEDED', 'IN_PROGRESS', 'device')).toThrow(
      expect.objectContaining({ code: 'E_JOB_TRANSITION' }),
    );
    expect(() => assertTransition('IN_PROGRESS', 'SUCCEEDED', 'device')).not.toThrow();
  });

  it('marks FAILED and TIMED_OUT retriable, REJECTED, REMOVED and CANCELED not', () => {
    expect(statuses.filter((s) => jobStatusRules[s].retriable).sort()).toEqual(['FAILED', 'TIMED_OUT']);
  });
});

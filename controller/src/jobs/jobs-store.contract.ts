import { describe, expect, it } from 'vitest';
import type { DatabaseFixture } from '../store/database-fixtures.js';
import type { StoredExecution } from './jobs-store.js';

const exec = (over: Partial<StoredExecution> = {}): StoredExecution => ({
  jobId: 'job-a',
  thing: 'gw-1',
  executionNumber: 1,
  status: 'QUEUED',
  statusDetails: undefined,
  document: { operation: 'x', n: [1, 2] },
  queuedAt: 100,
  startedAt: undefined,
  lastUpdatedAt: 100,
  versionNumber: 1,
  stepDeadline: undefined,
  rollout: 'r-1',
  ...over,
});

/** The contract every JobsStore passes (SQLite and PostgreSQL). */
export function jobsStoreContract(name: string, make: () => Promise<DatabaseFixture>) {
  describe(`JobsStore contract: ${name}`, () => {
    it('inserts an execution once, updates it, and reads the latest or a numbered one back as it was', async () => {
      const f = await make();
      try {
        const s = f.db.jobs;
        expect(await s.insert(exec())).toBe(true);
        expect(await s.insert(exec({ status: 'IN_PROGRESS' }))).toBe(false);
        expect(await s.get('job-a', 'gw-1')).toEqual(exec());
        const started = exec({
          status: 'IN_PROGRESS',
          statusDetails: { stage: 'download' },
          startedAt: 200,
          lastUpdatedAt: 200,
          versionNumber: 2,
          stepDeadline: 60_200,
        });
        await s.update(started);
        expect(await s.get('job-a', 'gw-1', 1)).toEqual(started);
        expect(await s.insert(exec({ executionNumber: 2, queuedAt: 300, lastUpdatedAt: 300 }))).toBe(true);
        expect((await s.get('job-a', 'gw-1'))!.executionNumber).toBe(2);
        expect(await s.get('job-a', 'gw-2')).toBeUndefined();
        expect(await s.get('job-a', 'gw-1', 7)).toBeUndefined();
      } finally {
        await f.close();
      }
    });

    it('lists a thing’s pending executions (the latest of each job) in the order notifications use', async () => {
      const f = await make();
      try {
        const s = f.db.jobs;
        await s.insert(exec({ jobId: 'b', queuedAt: 50 }));
        await s.insert(exec({ jobId: 'a', queuedAt: 70 }));
        await s.insert(exec({ jobId: 'c', queuedAt: 90, status: 'IN_PROGRESS', startedAt: 95 }));
        // job d: its first execution failed, the second one is queued; job e: ended
        await s.insert(exec({ jobId: 'd', queuedAt: 10, status: 'FAILED' }));
        await s.insert(exec({ jobId: 'd', executionNumber: 2, queuedAt: 60 }));
        await s.insert(exec({ jobId: 'e', queuedAt: 1, status: 'SUCCEEDED' }));
        await s.insert(exec({ jobId: 'z', thing: 'gw-2' }));
        expect((await s.pending('gw-1')).map((e) => `${e.jobId}#${e.executionNumber}`)).toEqual([
          'c#1',
          'b#1',
          'd#2',
          'a#1',
        ]);
        expect(await s.pending('gw-9')).toEqual([]);
        const many = await s.pendingMany(['gw-1', 'gw-2', 'gw-9']);
        expect([...many.keys()]).toEqual(['gw-1', 'gw-2', 'gw-9']);
        expect(many.get('gw-1')).toEqual(await s.pending('gw-1'));
        expect(many.get('gw-2')!.map((e) => e.jobId)).toEqual(['z']);
        expect(many.get('gw-9')).toEqual([]);
        expect(await s.pendingMany([])).toEqual(new Map());
      } finally {
        await f.close();
      }
    });

    it('holds a thing against another unit of work until the first commits (lockThings)', async () => {
      const f = await make();
      try {
        const order: string[] = [];
        let release!: () => void;
        const held = new Promise<void>((r) => {
          release = r;
        });
        const first = f.db.transaction(async () => {
          await f.db.jobs.lockThings(['gw-1', 'gw-2']);
          order.push('first locked');
          await held;
          order.push('first commits');
        });
        await new Promise((r) => setTimeout(r, 50));
        const second = f.db.transaction(async () => {
          await f.db.jobs.lockThings(['gw-2']);
          order.push('second locked');
        });
        await new Promise((r) => setTimeout(r, 150));
        release();
        await Promise.all([first, second]);
        expect(order).toEqual(['first locked', 'first commits', 'second locked']);
        await f.db.transaction(() => f.db.jobs.lockThings([]));
      } finally {
        await f.close();
      }
    });

    it('gives a rollout’s execution states without documents, and the step timeouts that ran out', async () => {
      const f = await make();
      try {
        const s = f.db.jobs;
        await s.insert(exec({ thing: 'gw-2', status: 'IN_PROGRESS', startedAt: 5, stepDeadline: 1000 }));
        await s.insert(exec({ thing: 'gw-1', status: 'IN_PROGRESS', startedAt: 5, stepDeadline: 3000 }));
        await s.insert(exec({ jobId: 'job-a-rb', thing: 'gw-1', statusDetails: { reason: 'x' } }));
        await s.insert(exec({ jobId: 'other', rollout: undefined }));
        expect(await s.statesByRollout('r-1')).toEqual([
          {
            jobId: 'job-a',
            thing: 'gw-1',
            executionNumber: 1,
            status: 'IN_PROGRESS',
            statusDetails: undefined,
            startedAt: 5,
            lastUpdatedAt: 100,
          },
          {
            jobId: 'job-a-rb',
            thing: 'gw-1',
            executionNumber: 1,
            status: 'QUEUED',
            statusDetails: { reason: 'x' },
            startedAt: undefined,
            lastUpdatedAt: 100,
          },
          expect.objectContaining({ jobId: 'job-a', thing: 'gw-2' }),
        ]);
        expect((await s.stepTimeoutsDue(2000)).map((e) => e.thing)).toEqual(['gw-2']);
        expect(await s.stepTimeoutsDue(999)).toEqual([]);
      } finally {
        await f.close();
      }
    });
  });
}

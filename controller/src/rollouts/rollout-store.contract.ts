import { generateKeyPairSync } from 'node:crypto';
import { parseYamlWith, RolloutPlan, signManifest } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import type { DatabaseFixture } from '../store/database-fixtures.js';
import { startRollout } from './wave-engine.js';

const key = generateKeyPairSync('ed25519');
const manifest = (version: string, notes?: string) =>
  signManifest(
    {
      schema: 1,
      name: 'app',
      version,
      hardware: ['rpi4'],
      artifacts: [{ name: 'a.tar', url: './a.tar', size: 1, sha256: 'a'.repeat(64) }],
      install: { type: 'files', target: 'app' },
      createdAt: '2026-01-01T00:00:00Z',
      ...(notes && { notes }),
    },
    key.privateKey,
  );
const plan = parseYamlWith(
  RolloutPlan,
  'apiVersion: fleetwave/v1\nkind: RolloutPlan\nname: app-two\nrelease: { name: app, version: 2.0.0 }\nwaves: [{ count: 1 }, { percent: 100 }]\n',
  'plan.yaml',
) as RolloutPlan;
const state = (id: string) =>
  startRollout(id, plan, [{ id: 'gw-1', hardware: 'rpi4', site: 'a', version: '1.0.0' }], 1000);

/** The contract every RolloutStore passes (SQLite and PostgreSQL). */
export function rolloutStoreContract(name: string, make: () => Promise<DatabaseFixture>) {
  describe(`RolloutStore contract: ${name}`, () => {
    it('registers a release once, tells the same manifest from a different one, and lists them', async () => {
      const f = await make();
      try {
        const s = f.db.rollouts;
        expect(await s.addRelease(manifest('2.0.0'), 10)).toBe('added');
        expect(await s.addRelease(manifest('1.0.0'), 20)).toBe('added');
        expect(await s.addRelease(manifest('2.0.0'), 30)).toBe('same');
        expect(await s.addRelease(manifest('2.0.0', 'other notes'), 30)).toBe('different');
        expect(await s.getRelease('app', '2.0.0')).toEqual(manifest('2.0.0'));
        expect(await s.getRelease('app', '9.9.9')).toBeUndefined();
        expect((await s.listReleases()).map((r) => [r.version, r.addedAt])).toEqual([
          ['2.0.0', 10],
          ['1.0.0', 20],
        ]);
        expect(await s.versionsOf('app')).toEqual(new Set(['1.0.0', '2.0.0']));
      } finally {
        await f.close();
      }
    });

    it('keeps rollout states (decoded with their schema), the active one by name, and counts', async () => {
      const f = await make();
      try {
        const s = f.db.rollouts;
        const a = state('app-two-1');
        await s.saveRollout(a, true, 1000);
        expect(await s.getRollout('app-two-1')).toEqual(a);
        expect(await s.activeByName('app-two')).toEqual(a);
        const done = { ...a, status: 'completed' as const };
        await s.saveRollout(done, false, 2000);
        expect(await s.activeByName('app-two')).toBeUndefined();
        await s.saveRollout(state('app-two-2'), true, 3000);
        expect(await s.countByName('app-two')).toBe(2);
        expect((await s.listRollouts()).map((r) => r.id)).toEqual(['app-two-1', 'app-two-2']);
        expect((await s.listRollouts({ active: true })).map((r) => r.id)).toEqual(['app-two-2']);
        expect((await s.listRollouts({ active: false })).map((r) => r.id)).toEqual(['app-two-1']);
        expect(await s.getRollout('nope')).toBeUndefined();
        // compare-and-set: written only over the state the writer read (null: only as a new rollout)
        const two = (await s.getRollout('app-two-2'))!;
        const paused = { ...two, status: 'paused' as const };
        await f.db.transaction(() => s.saveRollout(paused, true, 4000, two));
        await expect(f.db.transaction(() => s.saveRollout({ ...two, wave: 1 }, true, 5000, two))).rejects.toMatchObject(
          {
            code: 'E_CONFLICT',
          },
        );
        expect((await s.getRollout('app-two-2'))!.status).toBe('paused');
        await expect(f.db.transaction(() => s.saveRollout(paused, true, 6000, null))).rejects.toMatchObject({
          code: 'E_CONFLICT',
        });
        await f.db.transaction(() => s.saveRollout(state('app-two-3'), true, 7000, null));
        expect(await s.countByName('app-two')).toBe(3);
      } finally {
        await f.close();
      }
    });

    it('refuses a stored state that does not match its schema, saying where', async () => {
      const f = await make();
      try {
        const broken = { ...state('app-two-1'), status: 'exploded' } as unknown as ReturnType<typeof state>;
        await f.db.rollouts.saveRollout(broken, true, 1);
        await expect(f.db.rollouts.getRollout('app-two-1')).rejects.toMatchObject({
          code: 'E_DATABASE_CORRUPT',
          message: expect.stringMatching(/rollout app-two-1 .*status/),
        });
      } finally {
        await f.close();
      }
    });

    it('appends events with increasing ids, read after an id and by rollout', async () => {
      const f = await make();
      try {
        const s = f.db.rollouts;
        const e1 = await s.addEvent({ ts: 1, rollout: 'r-1', kind: 'rollout.started', details: { devices: 3 } });
        const e2 = await s.addEvent({ ts: 2, rollout: '', kind: 'device.at-risk', details: { device: 'gw-1' } });
        const e3 = await s.addEvent({ ts: 3, rollout: 'r-1', kind: 'wave.started', details: { wave: 0 } });
        expect(e1.id < e2.id && e2.id < e3.id).toBe(true);
        expect(await s.lastEventId()).toBe(e3.id);
        expect(await s.events()).toEqual([e1, e2, e3]);
        expect(await s.events({ after: e1.id })).toEqual([e2, e3]);
        expect(await s.events({ rollout: 'r-1', limit: 1 })).toEqual([e1]);
        // a rolled-back unit of work leaves no event and no gap a reader could wait on forever
        await f.db
          .transaction(async () => {
            await s.addEvent({ ts: 4, rollout: 'r-1', kind: 'wave.succeeded', details: {} });
            throw new Error('rolled back');
          })
          .catch(() => {});
        const e4 = await s.addEvent({ ts: 5, rollout: 'r-1', kind: 'wave.failed', details: {} });
        expect(await s.events({ after: e3.id })).toEqual([e4]);
      } finally {
        await f.close();
      }
    });
  });
}

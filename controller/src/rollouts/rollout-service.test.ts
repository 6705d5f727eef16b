import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseYamlWith, RolloutPlan, signManifest, trustedKeyFromPem } from '@fleetwave/shared';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { JobsService } from '../jobs/jobs-service.js';
import { trainRisk } from '../predict/evaluate.js';
import type { HealthStore } from '../predict/health-store.js';
import { PredictionService } from '../predict/service.js';
import { simulateFleet } from '../predict/simulator.js';
import type { ControllerDatabase } from '../store/database.js';
import { type DatabaseFixture, onEveryDatabase } from '../store/database-fixtures.js';
import type { PgDatabase } from '../store/pg/database.js';
import { orderTargets } from './assignment.js';
import { ReleaseService } from './releases.js';
import { type HealthSource, RolloutService } from './rollout-service.js';

const opened: DatabaseFixture[] = [];
afterAll(async () => {
  for (const f of opened) await f.close();
});

onEveryDatabase((dbName, make) => {
  /** The rollout service over a real database, the jobs service recording what it publishes, and a clock of the test. */
  async function setup(
    devices: number,
    start = Date.parse('2026-03-02T00:58:00Z'),
    withHealth?: (o: { db: ControllerDatabase; dir: string; now: () => number }) => HealthSource,
  ) {
    const dir = mkdtempSync(join(tmpdir(), 'fw-rs-'));
    const fixture = await make();
    opened.push(fixture);
    const db = fixture.db;
    const fleet = db.fleet;
    let clock = start;
    const now = () => clock;
    const published: { t: number; topic: string; body: { execution?: { jobId: string } } }[] = [];
    const log = pino({ level: 'silent' });
    const store = db.rollouts;
    const key = generateKeyPairSync('ed25519');
    const trusted = [trustedKeyFromPem(key.publicKey.export({ type: 'spki', format: 'pem' }).toString())];
    const releases = new ReleaseService({ store, dataDir: dir, trusted: () => trusted, now });
    await releases.add(
      signManifest(
        {
          schema: 1,
          name: 'app',
          version: '2.0.0',
          hardware: ['rpi4'],
          artifacts: [{ name: 'a.tar', url: './a.tar', size: 1, sha256: 'a'.repeat(64) }],
          install: { type: 'files', target: 'app' },
          createdAt: '2026-01-01T00:00:00Z',
        },
        key.privateKey,
      ),
    );
    let service: RolloutService;
    const health = withHealth?.({ db, dir, now });
    const jobs = new JobsService({
      db,
      jobsRoot: 'fleetwave/jobs',
      now,
      log,
      publish: (topic, payload) => published.push({ t: clock, topic, body: JSON.parse(payload) }),
      onChange: (e) => service?.executionChanged(e),
    });
    service = new RolloutService({
      db,
      jobs,
      releases,
      now,
      log,
      audit: async () => {},
      artifactBaseUrl: () => 'http://127.0.0.1:1/api/releases/',
      ...(health && { health }),
    });
    for (let i = 0; i < devices; i++) {
      await fleet.addDevice({
        id: `gw-${i}`,
        tags: {},
        hardware: 'rpi4',
        createdAt: clock,
        tokenHash: 'x',
        mosquittoHash: 'x',
      });
    }
    /**
     * Every device with a pending execution takes it and succeeds, through the protocol (a device that cannot read
     * its list now, the database gone for a moment, tries again next time).
     */
    const devicesSucceed = async () => {
      for (let i = 0; i < devices; i++) {
        const thing = `gw-${i}`;
        for (const e of await jobs.pendingOf(thing).catch(() => [])) {
          await jobs.handle(thing, `fleetwave/jobs/${thing}/jobs/start-next`, Buffer.from('{}'));
          await jobs.handle(
            thing,
            `fleetwave/jobs/${thing}/jobs/${e.jobId}/update`,
            Buffer.from('{"status":"SUCCEEDED"}'),
          );
        }
      }
    };
    const plan = (yaml: string) => parseYamlWith(RolloutPlan, yaml, 'plan.yaml') as RolloutPlan;
    return {
      service,
      jobs,
      published,
      devicesSucceed,
      plan,
      advance: (ms: number) => (clock += ms),
      now,
      store,
      health,
      db,
    };
  }

  const HEAD = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: app-two
release: { name: app, version: 2.0.0 }
`;

  describe(`rollout service (${dbName}, jobs service, a clock of the test)`, () => {
    it('notifies devices exactly on the rate-limit schedule, minute by minute', async () => {
      const t = await setup(60);
      await t.service.apply(
        t.plan(
          `${HEAD}waves: [{ percent: 100 }]\nrate: { maxPerMinute: 25, ramp: { baseRatePerMinute: 5, incrementFactor: 2, afterSucceeded: 5 } }\n`,
        ),
        'test',
      );
      const start = t.now();
      for (let second = 0; second < 6 * 60; second += 10) {
        await t.service.tickAll();
        await t.devicesSucceed();
        t.advance(10_000);
      }
      const firstNotify = new Map<string, number>();
      for (const p of t.published) {
        const thing = p.topic.split('/')[2]!;
        if (p.topic.endsWith('/notify-next') && p.body.execution && !firstNotify.has(thing))
          firstNotify.set(thing, p.t);
      }
      const perMinute = [0, 1, 2, 3, 4, 5].map(
        (m) => [...firstNotify.values()].filter((t0) => Math.floor((t0 - start) / 60_000) === m).length,
      );
      // ticks every 10 s, devices succeed at once; the rate is min(25, 5·2^floor(succeeded/5)) per minute and rises as
      // soon as the successes come (as AWS IoT Jobs' rateIncreaseCriteria): minute 0: 5 at 0 s, 5 more at 10 s (rate 10),
      // 10 more at 20 s (rate 20), 5 more at 30 s (rate 25) = 25; minute 1: 25; minute 2: the last 10
      expect(perMinute).toEqual([25, 25, 10, 0, 0, 0]);
      const minute0 = [...firstNotify.values()].filter((t0) => t0 - start < 60_000).map((t0) => (t0 - start) / 1000);
      expect([0, 10, 20, 30].map((sec) => minute0.filter((x) => x === sec).length)).toEqual([5, 5, 10, 5]);
      expect((await t.service.list())[0]!.status).toBe('completed');
    });

    it('holds a wave until its maintenance window opens, then runs it', async () => {
      const t = await setup(4, Date.parse('2026-03-02T00:58:00Z'));
      await t.service.apply(
        t.plan(
          `${HEAD}waves: [{ percent: 100 }]\nmaintenanceWindows: [{ cron: "0 2 * * *", duration: 1h, timezone: Europe/Berlin }]\n`,
        ),
        'test',
      );
      // the clock starts at 00:58 UTC, 01:58 in Berlin (CET): the window opens at 02:00 Berlin, 01:00 UTC
      for (let i = 0; i < 12; i++) {
        await t.service.tickAll();
        t.advance(10_000);
      }
      expect(t.published.filter((p) => p.topic.endsWith('/notify-next'))).toEqual([]);
      expect((await t.service.list())[0]!.waves[0]!.status).toBe('pending');
      // now 01:00 UTC: the window is open
      for (let i = 0; i < 3; i++) {
        await t.service.tickAll();
        t.advance(10_000);
      }
      expect(new Set(t.published.filter((p) => p.topic.endsWith('/notify-next')).map((p) => p.topic)).size).toBe(4);
      await t.devicesSucceed();
      await t.service.tickAll();
      expect((await t.service.list())[0]!.status).toBe('completed');
    });

    it('changes nothing when ticked again, and gives every device exactly one execution', async () => {
      const t = await setup(30);
      const r = await t.service.apply(
        t.plan(`${HEAD}waves: [{ count: 3 }, { percent: 50 }, { percent: 100 }]\n`),
        'test',
      );
      for (let i = 0; i < 10; i++) {
        await t.service.tickAll();
        await t.service.tickAll(); // ticking twice changes nothing
        await t.devicesSucceed();
        t.advance(1000);
      }
      const s = (await t.service.get(r.id))!;
      expect(s.status).toBe('completed');
      const ex = await t.service.executions(s);
      expect([...ex.updates.values()].every((e) => e.status === 'SUCCEEDED' && e.executionNumber === 1)).toBe(true);
      expect(ex.updates.size).toBe(30);
    });

    // PostgreSQL only (SQLite has no connection to lose)
    if (dbName === 'postgresql') {
      it('ends the same when the database connections are killed again and again during the rollout', async () => {
        const t = await setup(30);
        const pool = (t.db as PgDatabase).pool;
        const kill = () =>
          pool.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
          );
        const r = await t.service.apply(
          t.plan(`${HEAD}waves: [{ count: 3 }, { percent: 50 }, { percent: 100 }]\n`),
          'test',
        );
        let killed = 0;
        for (let i = 0; i < 30 && (await t.service.get(r.id))!.status !== 'completed'; i++) {
          // in flight: a tick and the devices' requests race the connections being ended under them
          const work = Promise.all([t.service.tickAll(), t.devicesSucceed()]);
          if (i % 2 === 0) killed += (await kill()).rowCount ?? 0;
          await work;
          t.advance(1000);
        }
        expect(killed).toBeGreaterThan(0);
        const s = (await t.service.get(r.id))!;
        expect(s.status).toBe('completed');
        const ex = await t.service.executions(s);
        // the outcome of a rollout nothing happened to: every device updated once, no execution twice, no wave skipped
        expect(ex.updates.size).toBe(30);
        expect([...ex.updates.values()].every((e) => e.status === 'SUCCEEDED' && e.executionNumber === 1)).toBe(true);
        expect(s.waves.map((w) => w.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
      });
    }
  });

  describe(`rollouts and failure prediction (the prediction service over the same ${dbName} database)`, () => {
    it('keeps a device about to fail out of the canary, and the rollout proceeds through a health-gated wave', async () => {
      const DAY = 86_400_000;
      const sim = simulateFleet({ devices: 100, days: 60, seed: 11 });
      const spec = { metrics: sim.history.metrics, windows: [DAY, 3 * DAY, 7 * DAY], unit: DAY, withAge: false };
      const model = await trainRisk(sim.history, sim.failures, {
        horizon: 7 * DAY,
        step: 12 * 3_600_000,
        spec,
        train: { epochs: 15 },
      });
      let prediction: PredictionService | undefined;
      let healthStore: HealthStore | undefined;
      const t = await setup(12, Date.parse('2026-03-02T00:58:00Z'), ({ db, dir, now }) => {
        writeFileSync(join(dir, 'model.json'), JSON.stringify(model));
        healthStore = db.health;
        prediction = new PredictionService({
          health: healthStore,
          fleet: db.fleet,
          transaction: (fn) => db.transaction(fn),
          modelFile: join(dir, 'model.json'),
          now,
          log: pino({ level: 'silent' }),
          onEvent: async () => {},
        });
        return prediction;
      });
      // without the risk section, this device would be the canary
      await prediction!.init(); // imports the model file into the database
      expect((await t.db.health.model())?.json).toBe(JSON.stringify(model));
      const targets = Array.from({ length: 12 }, (_, i) => ({
        id: `gw-${i}`,
        hardware: 'rpi4',
        site: '',
        version: null,
      }));
      const canary = orderTargets('app-two', targets)[0]!.id;
      // the last 14 days of health: the would-be canary is a simulated gateway overheating a day before it fails
      const thermal = sim.failures.find((f) => f.mode === 'thermal')!;
      const sick = sim.history.series.find((s) => s.device === thermal.device)!;
      const healthy = sim.history.series.filter((s) => !sim.failures.some((f) => f.device === s.device));
      const replay = (device: string, s: typeof sick) => {
        const shift = t.now() - s.t[s.t.length - 1]!;
        return s.t.flatMap((ts, i) =>
          ts + shift < t.now() - 14 * DAY
            ? []
            : [
                {
                  device,
                  ts: ts + shift,
                  metrics: Object.fromEntries(sim.history.metrics.map((m) => [m, s.metrics[m]![i]!])),
                },
              ],
        );
      };
      await prediction!.recordMany(targets.flatMap((d, i) => replay(d.id, d.id === canary ? sick : healthy[i]!)));
      await prediction!.scoreAll();
      expect(prediction!.risk(canary)).toBeGreaterThan(0.8);
      expect(targets.filter((d) => d.id !== canary).every((d) => prediction!.risk(d.id)! < 0.5)).toBe(true);

      const r = await t.service.apply(
        t.plan(
          `${HEAD}waves: [{ name: canary, count: 2, bake: 1h }, { percent: 50, bake: 1h }, { percent: 100 }]\nrisk: { deferAbove: 0.8 }\nhealthGate: { metrics: [agentRestarts, reconnects], minSample: 5 }\n`,
        ),
        'test',
      );
      const member = (id: string) => r.members.find((m) => m.device === id)!;
      expect(member(canary).wave).toBe(2);
      expect(r.members.filter((m) => m.wave === 0).map((m) => m.device)).not.toContain(canary);
      expect(
        (await t.store.events({ rollout: r.id })).filter((e) => e.kind === 'rollout.device-deferred'),
      ).toMatchObject([{ details: { device: canary, wave: 2 } }]);
      // devices update; their health keeps coming (nothing changes with the update): every wave passes the gate
      for (let step = 0; step < 40 && (await t.service.get(r.id))!.status !== 'completed'; step++) {
        await t.service.tickAll();
        await t.devicesSucceed();
        for (const d of targets) {
          await healthStore!.add(d.id, t.now(), { agentRestarts: 1, reconnects: 3 + (step % 2), cpuTempC: 50 });
        }
        t.advance(10 * 60_000);
      }
      const done = (await t.service.get(r.id))!;
      expect(done.status).toBe('completed');
      // the canary (2 devices) was too small a sample to compare; the second wave was compared and passed
      expect(done.waves[0]!.health!.every((h) => h.p === null)).toBe(true);
      expect(done.waves[1]!.health).toMatchObject([
        { metric: 'agentRestarts', updated: 6, notUpdated: 6, degraded: false },
        { metric: 'reconnects', updated: 6, notUpdated: 6, degraded: false },
      ]);
      expect(done.waves[1]!.health![1]!.p).not.toBeNull();
    }, 120_000);
  });
});

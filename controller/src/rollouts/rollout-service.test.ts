import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseYamlWith, RolloutPlan, signManifest, trustedKeyFromPem } from '@fleetwave/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { JobsService } from '../jobs/jobs-service.js';
import { JobsStore } from '../jobs/jobs-store.js';
import { SqliteFleetStore } from '../store/sqlite-fleet-store.js';
import { ReleaseService } from './releases.js';
import { RolloutService } from './rollout-service.js';
import { RolloutStore } from './rollout-store.js';

/** The rollout service over a real SQLite file, the jobs service recording what it publishes, and a clock of the test. */
function setup(devices: number, start = Date.parse('2026-03-02T00:58:00Z')) {
  const dir = mkdtempSync(join(tmpdir(), 'fw-rs-'));
  const fleet = new SqliteFleetStore(join(dir, 'fleet.db'));
  let clock = start;
  const now = () => clock;
  const published: { t: number; topic: string; body: { execution?: { jobId: string } } }[] = [];
  const log = pino({ level: 'silent' });
  const jobsStore = new JobsStore(fleet.db);
  const store = new RolloutStore(fleet.db);
  const key = generateKeyPairSync('ed25519');
  const trusted = [trustedKeyFromPem(key.publicKey.export({ type: 'spki', format: 'pem' }).toString())];
  const releases = new ReleaseService({ store, dataDir: dir, trusted: () => trusted, now });
  releases.add(
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
  const jobs = new JobsService({
    store: jobsStore,
    jobsRoot: 'fleetwave/jobs',
    now,
    log,
    publish: (topic, payload) => published.push({ t: clock, topic, body: JSON.parse(payload) }),
    onChange: (e) => service?.executionChanged(e),
  });
  service = new RolloutService({
    store,
    fleet,
    jobs,
    jobsStore,
    releases,
    now,
    log,
    audit: () => {},
    artifactBaseUrl: () => 'http://127.0.0.1:1/api/releases/',
  });
  for (let i = 0; i < devices; i++) {
    fleet.addDevice({
      id: `gw-${i}`,
      tags: {},
      hardware: 'rpi4',
      createdAt: clock,
      tokenHash: 'x',
      mosquittoHash: 'x',
    });
  }
  /** Every device with a pending execution takes it and succeeds, through the protocol. */
  const devicesSucceed = () => {
    for (let i = 0; i < devices; i++) {
      const thing = `gw-${i}`;
      for (const e of jobs.pendingOf(thing)) {
        jobs.handle(thing, `fleetwave/jobs/${thing}/jobs/start-next`, Buffer.from('{}'));
        jobs.handle(thing, `fleetwave/jobs/${thing}/jobs/${e.jobId}/update`, Buffer.from('{"status":"SUCCEEDED"}'));
      }
    }
  };
  const plan = (yaml: string) => parseYamlWith(RolloutPlan, yaml, 'plan.yaml') as RolloutPlan;
  return { service, jobs, published, devicesSucceed, plan, advance: (ms: number) => (clock += ms), now };
}

const HEAD = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: app-two
release: { name: app, version: 2.0.0 }
`;

describe('rollout service (SQLite, jobs service, a clock of the test)', () => {
  it('notifies devices exactly on the rate-limit schedule, minute by minute', () => {
    const t = setup(60);
    t.service.apply(
      t.plan(
        `${HEAD}waves: [{ percent: 100 }]\nrate: { maxPerMinute: 25, ramp: { baseRatePerMinute: 5, incrementFactor: 2, afterSucceeded: 5 } }\n`,
      ),
      'test',
    );
    const start = t.now();
    for (let second = 0; second < 6 * 60; second += 10) {
      t.service.tickAll();
      t.devicesSucceed();
      t.advance(10_000);
    }
    const firstNotify = new Map<string, number>();
    for (const p of t.published) {
      const thing = p.topic.split('/')[2]!;
      if (p.topic.endsWith('/notify-next') && p.body.execution && !firstNotify.has(thing)) firstNotify.set(thing, p.t);
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
    expect(t.service.list()[0]!.status).toBe('completed');
  });

  it('holds a wave until its maintenance window opens, then runs it', () => {
    const t = setup(4, Date.parse('2026-03-02T00:58:00Z'));
    t.service.apply(
      t.plan(
        `${HEAD}waves: [{ percent: 100 }]\nmaintenanceWindows: [{ cron: "0 2 * * *", duration: 1h, timezone: Europe/Berlin }]\n`,
      ),
      'test',
    );
    // the clock starts at 00:58 UTC, 01:58 in Berlin (CET): the window opens at 02:00 Berlin, 01:00 UTC
    for (let i = 0; i < 12; i++) {
      t.service.tickAll();
      t.advance(10_000);
    }
    expect(t.published.filter((p) => p.topic.endsWith('/notify-next'))).toEqual([]);
    expect(t.service.list()[0]!.waves[0]!.status).toBe('pending');
    // now 01:00 UTC: the window is open
    for (let i = 0; i < 3; i++) {
      t.service.tickAll();
      t.advance(10_000);
    }
    expect(new Set(t.published.filter((p) => p.topic.endsWith('/notify-next')).map((p) => p.topic)).size).toBe(4);
    t.devicesSucceed();
    t.service.tickAll();
    expect(t.service.list()[0]!.status).toBe('completed');
  });

  it('changes nothing when ticked again, and gives every device exactly one execution', () => {
    const t = setup(30);
    const r = t.service.apply(t.plan(`${HEAD}waves: [{ count: 3 }, { percent: 50 }, { percent: 100 }]\n`), 'test');
    for (let i = 0; i < 10; i++) {
      t.service.tickAll();
      t.service.tickAll(); // ticking twice changes nothing
      t.devicesSucceed();
      t.advance(1000);
    }
    const s = t.service.get(r.id)!;
    expect(s.status).toBe('completed');
    const ex = t.service.executions(s);
    expect([...ex.updates.values()].every((e) => e.status === 'SUCCEEDED' && e.executionNumber === 1)).toBe(true);
    expect(ex.updates.size).toBe(30);
  });
});

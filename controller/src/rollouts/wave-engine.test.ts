import { RolloutPlan } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { assignWaves, type TargetDevice, waveSizes } from './assignment.js';
import {
  type Action,
  command,
  type ExecutionView,
  healthVerdicts,
  type RolloutState,
  startRollout,
  tick,
} from './wave-engine.js';

const fleet = (n: number, hw = (i: number) => (i % 2 ? 'rpi4' : 'rpi3')): TargetDevice[] =>
  Array.from({ length: n }, (_, i) => ({ id: `gw-${i}`, hardware: hw(i), site: `s${i % 3}`, version: '1.0.0' }));

const plan = (over: Record<string, unknown> = {}) =>
  RolloutPlan.parse({
    apiVersion: 'fleetwave/v1',
    kind: 'RolloutPlan',
    name: 'app-2',
    release: { name: 'app', version: '2.0.0' },
    waves: [
      { name: 'canary', count: 2, failureThreshold: { percent: 50, minFinished: 2 } },
      { percent: 50 },
      { percent: 100 },
    ],
    ...over,
  });

/** Drives the engine like the adapter does, with devices that answer as `outcome` says. */
class Sim {
  state: RolloutState;
  now = 1_700_000_000_000;
  updates = new Map<string, ExecutionView>();
  rollbacks = new Map<string, ExecutionView>();
  log: Action[] = [];
  windowOpen = true;
  targets: TargetDevice[];

  constructor(p: RolloutPlan, targets: TargetDevice[]) {
    this.targets = targets;
    this.state = startRollout('app-2-1', p, targets, this.now);
  }
  input() {
    return {
      now: this.now,
      targets: this.targets,
      updates: this.updates,
      rollbacks: this.rollbacks,
      windowOpen: this.windowOpen,
      knownVersions: new Set(['1.0.0', '2.0.0']),
    };
  }
  apply(actions: Action[]) {
    this.log.push(...actions);
    for (const a of actions) {
      if (a.type === 'queue') {
        const map = a.purpose === 'update' ? this.updates : this.rollbacks;
        map.set(a.device, { status: 'QUEUED', executionNumber: a.executionNumber });
      } else if (a.type === 'cancel') {
        const map = a.purpose === 'update' ? this.updates : this.rollbacks;
        map.set(a.device, { ...map.get(a.device)!, status: 'CANCELED' });
      } else if (a.type === 'time-out') {
        this.updates.set(a.device, { ...this.updates.get(a.device)!, status: 'TIMED_OUT' });
      }
    }
  }
  tick() {
    const r = tick(this.state, this.input());
    this.state = r.state;
    this.apply(r.actions);
    return r.actions;
  }
  cmd(c: Parameters<typeof command>[1], wave?: number) {
    const r = command(this.state, c, this.input(), wave);
    this.state = r.state;
    this.apply(r.actions);
  }
  /** Every queued execution finishes: `fail` says which devices fail. */
  finish(fail: (id: string) => boolean = () => false) {
    for (const [id, e] of this.updates) {
      if (e.status === 'QUEUED') {
        this.updates.set(id, {
          ...e,
          status: fail(id) ? 'FAILED' : 'SUCCEEDED',
          reason: fail(id) ? 'E_HEALTH_CHECK' : undefined,
        });
      }
    }
    for (const [id, e] of this.rollbacks)
      if (e.status === 'QUEUED') this.rollbacks.set(id, { ...e, status: 'SUCCEEDED' });
  }
  events = () => this.log.filter((a) => a.type === 'event').map((a) => (a as { kind: string }).kind);
  queuedFor = (wave: number) =>
    this.log.filter((a) => a.type === 'queue' && a.purpose === 'update' && a.wave === wave).length;
}

describe('wave assignment', () => {
  it('is deterministic, sized cumulatively, and spreads the canary across hardware', () => {
    const p = plan();
    expect(waveSizes(p.waves, 100)).toEqual([2, 48, 50]);
    expect(
      waveSizes(
        RolloutPlan.parse({ ...plan(), waves: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }] })
          .waves,
        10_000,
      ),
    ).toEqual([100, 900, 4000, 5000]);
    expect(waveSizes(p.waves, 1)).toEqual([1, 0, 0]);
    const a = assignWaves('app-2', p.waves, fleet(40));
    expect(assignWaves('app-2', p.waves, [...fleet(40)].reverse())).toEqual(a);
    expect(new Set(a.filter((x) => x.wave === 0).map((x) => x.device.hardware)).size).toBe(2);
    expect(a.map((x) => x.device.id).sort()).toEqual(
      fleet(40)
        .map((d) => d.id)
        .sort(),
    );
  });
});

describe('wave engine', () => {
  it('takes a good release through every wave', () => {
    const sim = new Sim(plan(), fleet(20));
    sim.tick();
    expect(sim.queuedFor(0)).toBe(2);
    expect(sim.queuedFor(1)).toBe(0);
    for (let i = 0; i < 6 && sim.state.status === 'running'; i++) {
      sim.finish();
      sim.tick();
    }
    expect(sim.state.status).toBe('completed');
    expect([...sim.updates.values()].every((e) => e.status === 'SUCCEEDED')).toBe(true);
    expect(sim.updates.size).toBe(20);
    // no device was queued twice
    const queued = sim.log.filter((a) => a.type === 'queue').map((a) => (a as { device: string }).device);
    expect(new Set(queued).size).toBe(queued.length);
    expect(sim.events()).toEqual(expect.arrayContaining(['wave.started', 'wave.succeeded', 'rollout.completed']));
  });

  it('stops at a failed canary and rolls the devices that updated back', () => {
    const sim = new Sim(plan({ onFailure: 'rollback' }), fleet(20));
    sim.tick();
    const canary = [...sim.updates.keys()];
    sim.finish((id) => id === canary[0]);
    sim.tick();
    expect(sim.state.status).toBe('rolling-back');
    expect(sim.state.reason).toMatch(/wave canary failed: 1 of 2 finished devices failed/);
    const rb = sim.log.filter((a) => a.type === 'queue' && a.purpose === 'rollback');
    expect(rb).toEqual([expect.objectContaining({ device: canary[1], version: '1.0.0' })]);
    expect(sim.queuedFor(1)).toBe(0);
    sim.finish();
    sim.tick();
    expect(sim.state.status).toBe('rolled-back');
  });

  it('names the hardware when failures are only on one kind', () => {
    const p = plan({
      waves: [{ name: 'canary', count: 8, failureThreshold: { percent: 30, minFinished: 4 } }, { percent: 100 }],
    });
    const sim = new Sim(p, fleet(20));
    sim.tick();
    sim.finish((id) => sim.targets.find((t) => t.id === id)!.hardware === 'rpi3');
    sim.tick();
    expect(sim.state.status).toBe('paused');
    expect(sim.state.reason).toMatch(/failures only on hardware rpi3/);
    expect(sim.state.reason).toMatch(/reasons: E_HEALTH_CHECK ×\d/);
    // an operator accepts the failed wave and the rollout goes on
    sim.cmd('resume');
    expect(sim.state.waves[0]!.status).toBe('accepted');
    expect(sim.state.wave).toBe(1);
  });

  it('pauses, resumes, aborts mid-wave: what has not started is canceled', () => {
    const sim = new Sim(plan(), fleet(20));
    sim.tick();
    sim.finish();
    sim.tick(); // canary succeeded, wave 2 queued
    expect(sim.state.wave).toBe(1);
    sim.cmd('pause');
    expect(sim.tick()).toEqual([]);
    sim.cmd('resume');
    expect(sim.state.status).toBe('running');
    // half of wave 2 starts, then the operator aborts
    const wave2 = [...sim.updates.entries()].filter(([, e]) => e.status === 'QUEUED').map(([id]) => id);
    for (const id of wave2.slice(0, 3))
      sim.updates.set(id, { status: 'IN_PROGRESS', executionNumber: 1, startedAt: sim.now });
    sim.cmd('abort');
    expect(sim.state.status).toBe('aborted');
    const canceled = sim.log.filter((a) => a.type === 'cancel').map((a) => (a as { device: string }).device);
    expect(canceled.sort()).toEqual(wave2.slice(3).sort());
    expect(() => sim.cmd('resume')).toThrow(/cannot resume a rollout that is aborted/);
  });

  it('holds a wave until a maintenance window opens and an approval is given', () => {
    const p = plan({ waves: [{ count: 2 }, { percent: 100, approval: true }] });
    const sim = new Sim(p, fleet(6));
    sim.windowOpen = false;
    sim.tick();
    expect(sim.updates.size).toBe(0);
    expect(sim.state.waves[0]!.status).toBe('pending');
    sim.windowOpen = true;
    sim.tick();
    expect(sim.updates.size).toBe(2);
    sim.finish();
    sim.tick();
    expect(sim.state.status).toBe('awaiting-approval');
    expect(sim.updates.size).toBe(2);
    sim.cmd('approve');
    expect(sim.state.status).toBe('running');
    expect(sim.updates.size).toBe(6);
  });

  it('bakes a wave before widening, and a failure during the bake still stops it', () => {
    const p = plan({
      waves: [
        { count: 4, bake: '10m', failureThreshold: { percent: 25, minFinished: 1 }, successThreshold: 75 },
        { percent: 100 },
      ],
    });
    const sim = new Sim(p, fleet(10));
    sim.tick();
    const canary = [...sim.updates.keys()];
    sim.updates.set(canary[0]!, { status: 'SUCCEEDED', executionNumber: 1 });
    sim.updates.set(canary[1]!, { status: 'SUCCEEDED', executionNumber: 1 });
    sim.updates.set(canary[2]!, { status: 'SUCCEEDED', executionNumber: 1 });
    sim.tick();
    expect(sim.state.waves[0]!.status).toBe('baking');
    sim.now += 5 * 60_000;
    sim.updates.set(canary[3]!, { status: 'FAILED', executionNumber: 1 });
    sim.tick();
    expect(sim.state.status).toBe('paused');
  });

  it('retries a failed device as a new execution, up to the wave retries', () => {
    const p = plan({ waves: [{ count: 1, retries: 1 }, { percent: 100 }] });
    const sim = new Sim(p, fleet(3));
    sim.tick();
    const [dev] = [...sim.updates.keys()];
    sim.updates.set(dev!, { status: 'FAILED', executionNumber: 1 });
    sim.tick();
    expect(sim.updates.get(dev!)).toEqual({ status: 'QUEUED', executionNumber: 2 });
    sim.updates.set(dev!, { status: 'FAILED', executionNumber: 2 });
    sim.tick();
    expect(sim.state.status).toBe('paused');
  });

  it('times out a device that stays in progress past the wave timeout', () => {
    const p = plan({ waves: [{ count: 1, deviceTimeout: '10m' }, { percent: 100 }] });
    const sim = new Sim(p, fleet(3));
    sim.tick();
    const [dev] = [...sim.updates.keys()];
    sim.updates.set(dev!, { status: 'IN_PROGRESS', executionNumber: 1, startedAt: sim.now });
    sim.now += 9 * 60_000;
    expect(sim.tick().filter((a) => a.type === 'time-out')).toEqual([]);
    sim.now += 60_000;
    expect(sim.tick()).toContainEqual({ type: 'time-out', device: dev, reason: 'device timeout of the wave' });
  });

  it('gives devices that join while it runs the release in the last wave', () => {
    const sim = new Sim(plan(), fleet(10));
    sim.tick();
    sim.targets = [...sim.targets, { id: 'gw-new', hardware: 'rpi4', site: 's9', version: '1.0.0' }];
    sim.tick();
    expect(sim.state.members.find((m) => m.device === 'gw-new')).toMatchObject({ wave: 2 });
    expect(sim.updates.has('gw-new')).toBe(false);
    for (let i = 0; i < 6 && sim.state.status === 'running'; i++) {
      sim.finish();
      sim.tick();
    }
    expect(sim.updates.get('gw-new')?.status).toBe('SUCCEEDED');
  });

  it('follows the rate limit and its exponential ramp exactly, minute by minute', () => {
    const p = plan({
      waves: [{ percent: 100 }],
      rate: { maxPerMinute: 40, ramp: { baseRatePerMinute: 5, incrementFactor: 2, afterSucceeded: 5 } },
    });
    const sim = new Sim(p, fleet(100));
    const perMinute: number[] = [];
    for (let minute = 0; minute < 6; minute++) {
      const before = sim.log.filter((a) => a.type === 'queue').length;
      sim.tick();
      sim.now += 30_000;
      sim.tick(); // same minute: nothing more
      perMinute.push(sim.log.filter((a) => a.type === 'queue').length - before);
      sim.finish();
      sim.now += 30_000;
    }
    // the rate is base · factor^floor(succeeded / afterSucceeded), at most maxPerMinute:
    // 0 succeeded → 5; 5 → 10; 15 → 40; then the last 5
    expect(perMinute).toEqual([5, 10, 40, 40, 5, 0]);
    expect(sim.updates.size).toBe(100);
  });
});

describe('a self-paced jobs backend (AWS IoT Jobs paces, retries and times out itself)', () => {
  it('queues a whole wave at once, leaves retries and timeouts to the backend, and still gates the waves', () => {
    const p = plan({
      waves: [{ name: 'canary', count: 4, retries: 2, deviceTimeout: '1m' }, { percent: 100 }],
      rate: { maxPerMinute: 1 },
    });
    const sim = new Sim(p, fleet(10));
    const input = sim.input.bind(sim);
    sim.input = () => ({ ...input(), selfPaced: true });
    sim.tick();
    // the rate is the backend's (jobExecutionsRolloutConfig): all four canaries at once, nothing of wave 2 yet
    expect(sim.queuedFor(0)).toBe(4);
    expect(sim.queuedFor(1)).toBe(0);
    const [a, b] = [...sim.updates.keys()];
    sim.updates.set(a!, { status: 'IN_PROGRESS', executionNumber: 1, startedAt: sim.now });
    sim.updates.set(b!, { status: 'FAILED', executionNumber: 1, reason: 'E_DOWNLOAD' });
    sim.now += 120_000;
    const actions = sim.tick();
    // no time-out (the job's timeoutConfig does it) and no re-queue of the failed attempt (its retry config does)
    expect(actions.filter((x) => x.type === 'time-out' || x.type === 'queue')).toEqual([]);
    // a failed attempt with retries left is not a failed device: the canary still waits
    expect(sim.state.waves[0]!.status).toBe('running');
    for (const id of sim.updates.keys()) sim.updates.set(id, { status: 'SUCCEEDED', executionNumber: 2 });
    sim.tick();
    expect(sim.state.waves[0]!.status).toBe('succeeded');
    expect(sim.queuedFor(1)).toBe(6);
  });
});

describe('the health gate (updated devices against devices not updated yet)', () => {
  /** Poisson counts per device (a seeded generator): reboots or reconnects per hour of a cohort. */
  const cohort = (n: number, lambda: number, seed: number) => {
    let a = seed >>> 0;
    const next = () => {
      a = (Math.imul(a, 1_664_525) + 1_013_904_223) >>> 0;
      return a / 2 ** 32;
    };
    return Array.from({ length: n }, () => {
      const l = Math.exp(-lambda);
      let k = 0;
      let p = 1;
      do {
        k++;
        p *= next();
      } while (p > l);
      return k - 1;
    });
  };

  it('a real degradation stops the wave; noise of the same size as normal variation does not', () => {
    // 200 comparisons of two cohorts from the same distribution: the gate (alpha 0.01, two metrics) rarely fires
    let falseAlarms = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const v = healthVerdicts(
        [
          {
            metric: 'agentRestarts',
            worse: 'higher',
            updated: cohort(20, 2, seed),
            notUpdated: cohort(60, 2, seed + 1000),
          },
          {
            metric: 'reconnects',
            worse: 'higher',
            updated: cohort(20, 4, seed + 2000),
            notUpdated: cohort(60, 4, seed + 3000),
          },
        ],
        8,
        0.01,
      );
      if (v.some((x) => x.degraded)) falseAlarms++;
    }
    expect(falseAlarms).toBeLessThanOrEqual(4);
    // twice the restarts after the update: caught every time
    for (let seed = 1; seed <= 50; seed++) {
      const [v] = healthVerdicts(
        [
          {
            metric: 'agentRestarts',
            worse: 'higher',
            updated: cohort(20, 4, seed),
            notUpdated: cohort(60, 2, seed + 1000),
          },
        ],
        8,
        0.01,
      );
      expect(v!.degraded).toBe(true);
    }
    // a metric where lower is worse (signal strength), and too small a cohort is not judged
    const [signal] = healthVerdicts(
      [
        {
          metric: 'wifiSignalDbm',
          worse: 'lower',
          updated: [-80, -82, -79, -85, -81, -83, -80, -84],
          notUpdated: [-60, -62, -58, -61, -63, -59, -60, -64],
        },
      ],
      8,
      0.01,
    );
    expect(signal!.degraded).toBe(true);
    const [small] = healthVerdicts(
      [{ metric: 'agentRestarts', worse: 'higher', updated: [9, 9, 9], notUpdated: [0, 0, 0] }],
      8,
      0.01,
    );
    expect(small).toMatchObject({ p: null, degraded: false });
  });

  it('fails the wave like a failed install when the updated devices are worse, and lets it succeed when they are not', () => {
    const p = plan({
      waves: [{ name: 'canary', count: 10, bake: '1h' }, { percent: 100 }],
      healthGate: { metrics: ['agentRestarts'], minSample: 8, alpha: 0.01 },
      onFailure: 'rollback',
    });
    const run = (updatedRate: number) => {
      const sim = new Sim(p, fleet(40));
      const input = sim.input.bind(sim);
      sim.input = () => ({
        ...input(),
        health: [
          {
            metric: 'agentRestarts',
            worse: 'higher' as const,
            updated: cohort(10, updatedRate, 7),
            notUpdated: cohort(30, 1, 8),
          },
        ],
      });
      sim.tick();
      sim.finish();
      sim.tick(); // baking
      sim.now += 3_600_000;
      sim.tick(); // the bake is over: judged
      return sim;
    };
    const healthy = run(1);
    expect(healthy.state.waves[0]!.status).toBe('succeeded');
    expect(healthy.state.waves[0]!.health![0]).toMatchObject({
      metric: 'agentRestarts',
      updated: 10,
      notUpdated: 30,
      degraded: false,
    });
    const sick = run(6);
    expect(sick.state.waves[0]!.status).toBe('failed');
    expect(sick.state.status).toBe('rolling-back');
    expect(sick.state.reason).toMatch(
      /health of updated devices is worse: agentRestarts higher on updated devices \(median [\d.]+ vs [\d.]+, n 10\/30, Mann-Whitney p=/,
    );
  });

  it('keeps devices with a high predicted failure risk out of the early waves', () => {
    const targets = fleet(30).map((t, i) => ({ ...t, risk: i < 3 ? 0.95 : 0.05 }));
    const p = plan({
      waves: [{ name: 'canary', count: 2 }, { percent: 50 }, { percent: 100 }],
      risk: { deferAbove: 0.8 },
    });
    const s = startRollout('r-1', p, targets, 0);
    const waveOf = (id: string) => s.members.find((m) => m.device === id)!.wave;
    for (const id of ['gw-0', 'gw-1', 'gw-2']) expect(waveOf(id)).toBe(2);
    expect(s.deferred).toEqual([
      { device: 'gw-0', risk: 0.95 },
      { device: 'gw-1', risk: 0.95 },
      { device: 'gw-2', risk: 0.95 },
    ]);
    // without the risk section, the same devices may land anywhere (the canary is two of the others here)
    expect(startRollout('r-1', plan({ waves: p.waves }), targets, 0).deferred).toBeUndefined();
  });
});

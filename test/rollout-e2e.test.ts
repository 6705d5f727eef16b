import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { type Agent, createAgent } from '@fleetwave/agent';
import { AgentConfig } from '@fleetwave/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  api,
  type ControllerProcess,
  cleanupAfterEach,
  freePort,
  queryControllerDb,
  spawnController,
  tmp,
  waitForAsync,
} from './helpers.js';
import { appArchive, filesRelease, publishRelease, type SigningKey, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();
const N = 50;

interface Fleet {
  dir: string;
  ctl: ControllerProcess;
  restart(): Promise<void>;
  agents: { id: string; hw: string; agent: Agent; appsDir: string; make: () => Agent }[];
  key: SigningKey;
}

async function startFleet(): Promise<Fleet> {
  const dir = tmp('rollout-e2e');
  const ctlDir = join(dir, 'ctl');
  const key = trustedKey(ctlDir);
  const agentKey = key.pemFile;
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const args = ['--mqtt-port', String(mqttPort), '--http-port', String(httpPort)];
  const fleet: Fleet = { dir, key, agents: [], ctl: await spawnController(ctlDir, args), restart: async () => {} };
  fleet.restart = async () => {
    await fleet.ctl.kill('SIGKILL');
    fleet.ctl = await spawnController(ctlDir, args);
  };
  cleanups.push(() => fleet.ctl.kill('SIGKILL'));
  const log = pino({ level: 'silent' });
  for (let i = 0; i < N; i++) {
    const id = `gw-${String(i).padStart(2, '0')}`;
    const hw = i % 2 ? 'rpi4' : 'rpi3';
    const r = await api(fleet.ctl.url, fleet.ctl.adminToken, 'POST', '/api/devices', {
      id,
      hardware: hw,
      tags: { site: i % 3 ? 'north' : 'south' },
    });
    expect(r.status).toBe(201);
    const appsDir = join(dir, id, 'apps');
    const config = AgentConfig.parse({
      device: { id },
      dataDir: join(dir, id),
      ingest: { port: 0 },
      uplink: { url: `mqtt://127.0.0.1:${mqttPort}`, username: id, backoffMinMs: 50, backoffMaxMs: 500 },
      health: { enabled: false },
      updates: {
        enabled: true,
        hardware: hw,
        trustedKeys: [agentKey],
        appsDir,
        // the application's own check: the release must carry a marker for this hardware
        healthCommand: ['test', '-f', join(appsDir, 'gateway-app', 'current', `ok-${hw}`)],
        healthDeadline: '20s',
        // the controller is killed during the rollout: downloads retry through its restart
        downloadBackoffMs: 200,
        downloadRetries: 10,
      },
      log: { level: 'silent' },
    });
    const trusted = [(await import('@fleetwave/shared')).trustedKeyFromPem(key.publicPem)];
    const make = () =>
      createAgent({
        config,
        log,
        uplinkClient: { username: id, password: r.body.token },
        sensorUsers: new Map(),
        trustedKeys: trusted,
      });
    const entry = { id, hw, agent: make(), appsDir, make };
    await entry.agent.start();
    cleanups.push(() => entry.agent.stop(200));
    fleet.agents.push(entry);
  }
  return fleet;
}

const plan = (name: string, version: string, canary: object) => `apiVersion: fleetwave/v1
kind: RolloutPlan
name: ${name}
release: { name: gateway-app, version: ${version} }
waves:
  - { name: canary, ${Object.entries(canary)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join(', ')} }
  - { name: half, percent: 50 }
  - { name: all, percent: 100 }
onFailure: rollback
`;

async function rollout(f: Fleet, yaml: string) {
  const r = await api(f.ctl.url, f.ctl.adminToken, 'POST', '/api/rollouts', { yaml, source: 'plan.yaml' });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id as string;
}

async function waitForStatus(f: Fleet, id: string, done: (s: string) => boolean, timeoutMs = 120_000) {
  let last: Record<string, unknown> = {};
  await waitForAsync(
    `rollout ${id} to finish`,
    async () => {
      const r = await api(f.ctl.url, f.ctl.adminToken, 'GET', `/api/rollouts/${id}?devices=1`).catch(() => undefined);
      if (r?.status === 200) last = r.body;
      return done(String(last.status));
    },
    timeoutMs,
  );
  return last as {
    status: string;
    reason?: string;
    waves: { status: string; members: { device: string; hardware: string; status: string; rollback?: string }[] }[];
  };
}

const activeSlot = (a: Fleet['agents'][number]) => {
  try {
    return readlinkSync(join(a.appsDir, 'gateway-app', 'current'));
  } catch {
    return null;
  }
};

describe('rollouts end to end (controller process, 50 in-process agents, embedded broker)', () => {
  it('takes a good release through every wave across controller kills, then stops a bad one at the canary and rolls back', async () => {
    const f = await startFleet();
    const good = await appArchive(f.dir, '1.0.0', { 'ok-rpi3': '', 'ok-rpi4': '', 'app.txt': 'v1' });
    await publishRelease(f.ctl.url, f.ctl.adminToken, filesRelease(f.key, '1.0.0', good), good);

    const id1 = await rollout(
      f,
      plan('app-v1', '1.0.0', { count: 2, failureThreshold: { percent: 50, minFinished: 2 } }),
    );
    // a gateway of the last wave goes offline before its wave starts
    const planned = await waitForStatus(f, id1, () => true);
    const away = f.agents.find((a) => a.id === planned.waves[2]!.members[0]!.device)!;
    await away.agent.stop(200);
    // kill -9 and restart the controller at random moments of the rollout; it must reach the same outcome
    for (let k = 0; k < 5; k++) {
      await new Promise((r) => setTimeout(r, 200 + Math.floor(Math.random() * 800)));
      await f.restart();
    }
    // the rollout waits in its last wave for the offline gateway, whose execution stays queued
    await waitForAsync(
      'every online device to finish',
      async () => {
        const r = await api(f.ctl.url, f.ctl.adminToken, 'GET', `/api/rollouts/${id1}?devices=1`);
        const m = (r.body.waves as { members: { device: string; status: string }[] }[]).flatMap((w) => w.members);
        return m.filter((x) => x.device !== away.id).every((x) => x.status === 'SUCCEEDED');
      },
      120_000,
    );
    const mid = await waitForStatus(f, id1, () => true);
    expect(mid.status).toBe('running');
    expect(mid.waves.flatMap((w) => w.members).find((m) => m.device === away.id)?.status).toBe('QUEUED');
    // it comes back after a while and gets the release it missed
    away.agent = away.make();
    await away.agent.start();
    const v1 = await waitForStatus(f, id1, (s) => s !== 'running');
    expect(
      v1.status,
      JSON.stringify({
        reason: v1.reason,
        waves: v1.waves.map((w) => w.members.filter((m) => m.status !== 'SUCCEEDED')),
      }),
    ).toBe('completed');
    const members = v1.waves.flatMap((w) => w.members);
    expect(members).toHaveLength(N);
    expect(members.every((m) => m.status === 'SUCCEEDED')).toBe(true);
    expect(v1.waves.map((w) => w.members.length)).toEqual([2, 23, 25]);
    for (const a of f.agents) {
      expect(a.agent.status().releases).toEqual({ 'gateway-app': '1.0.0' });
      expect(activeSlot(a)).toBe('slots/1.0.0');
    }
    // the registry learnt what every device runs (from presence)
    await waitForAsync('registry to show 1.0.0 everywhere', async () => {
      const r = await api(f.ctl.url, f.ctl.adminToken, 'GET', '/api/devices');
      return (r.body.devices as { releases?: Record<string, string> }[]).every(
        (d) => d.releases?.['gateway-app'] === '1.0.0',
      );
    });

    // 2.0.0 lacks the rpi3 marker: its health check fails on rpi3 only
    const bad = await appArchive(f.dir, '2.0.0', { 'ok-rpi4': '', 'app.txt': 'v2' });
    await publishRelease(f.ctl.url, f.ctl.adminToken, filesRelease(f.key, '2.0.0', bad), bad);
    const id2 = await rollout(
      f,
      plan('app-v2', '2.0.0', { count: 4, failureThreshold: { percent: 25, minFinished: 4 } }),
    );
    const v2 = await waitForStatus(f, id2, (s) => s === 'rolled-back' || s === 'completed' || s === 'aborted');
    expect(v2.status).toBe('rolled-back');
    expect(v2.reason).toMatch(/wave canary failed/);
    expect(v2.reason).toMatch(/failures only on hardware rpi3/);
    expect(v2.reason).toMatch(/E_HEALTH_CHECK/);
    const canary = v2.waves[0]!.members;
    expect(canary.map((m) => m.hardware).sort()).toEqual(['rpi3', 'rpi3', 'rpi4', 'rpi4']);
    for (const m of canary) {
      if (m.hardware === 'rpi3') expect(m).toMatchObject({ status: 'FAILED' });
      else expect(m).toMatchObject({ status: 'SUCCEEDED', rollback: 'SUCCEEDED' });
    }
    // nothing past the canary was started
    expect(
      v2.waves
        .slice(1)
        .flatMap((w) => w.members)
        .every((m) => m.status === 'NOT_STARTED' || m.status === 'CANCELED'),
    ).toBe(true);
    // every device ends on 1.0.0: the rpi3 canaries rolled themselves back, the rpi4 ones were sent back
    for (const a of f.agents) {
      expect(a.agent.status().releases).toEqual({ 'gateway-app': '1.0.0' });
      expect(activeSlot(a)).toBe('slots/1.0.0');
    }

    // no device got two executions of one job, whatever the controller restarts did
    await f.ctl.kill('SIGTERM');
    const dupes = await queryControllerDb(
      join(f.dir, 'ctl'),
      'SELECT job_id, thing, COUNT(*) AS n FROM job_executions GROUP BY job_id, thing HAVING COUNT(*) > 1',
    );
    expect(dupes).toEqual([]);
  }, 300_000);
});

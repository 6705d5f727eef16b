import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AgentProcess, cleanupAfterEach } from './helpers.js';
import { installed, type Rig, release, rig } from './update-rig.js';

const cleanups = cleanupAfterEach();

/** Starts the agent and SIGKILLs it when it reports (after persisting) the stage, or `delayMs` after it. */
async function killAt(r: Rig, stage: string, delayMs = 0): Promise<boolean> {
  const agent: AgentProcess = await r.start();
  return new Promise((resolve) => {
    let done = false;
    const seen = (line: string) => {
      if (done || !line.includes('"update-stage"') || JSON.parse(line).stage !== stage) return;
      done = true;
      setTimeout(() => agent.kill('SIGKILL').then(() => resolve(true)), delayMs);
    };
    agent.onLine(seen);
    // a resumed update may reach the stage before the agent printed its ready line
    for (const line of agent.stdout().split('\n')) seen(line);
    agent.proc.once('exit', () => !done && resolve(false));
  });
}

/**
 * Starts the agent and SIGKILLs it at a random instant (0–`jitterMs`) after it says it is in `stage` (on entering it,
 * or starting it again after a restart); false when the job ended first (the agent is killed then too).
 */
async function killInside(r: Rig, jobId: string, stage: string, jitterMs: number): Promise<boolean> {
  const agent: AgentProcess = await r.start();
  const ended = r.waitTerminal(jobId).then(() => false);
  const inStage = new Promise<boolean>((resolve) => {
    const seen = (line: string) => {
      if (line.includes('"update-stage"') && JSON.parse(line).stage === stage) resolve(true);
    };
    agent.onLine(seen);
    for (const line of agent.stdout().split('\n')) seen(line);
  });
  const hit = await Promise.race([inStage, ended]);
  if (hit) await new Promise((res) => setTimeout(res, Math.random() * jitterMs));
  await agent.kill('SIGKILL');
  return hit;
}

/** The invariant: the job ended, and the device runs either the old version or, committed, the new one. */
function assertConsistent(r: Rig, e: { status: string }, from: string, to: string, what: string) {
  const onNew = r.active() === `slots/${to}` && installed(r) === to;
  const onOld = r.active() === `slots/${from}` && installed(r) === from;
  expect(['SUCCEEDED', 'FAILED'], what).toContain(e.status);
  if (e.status === 'SUCCEEDED') expect(onNew, `${what}: committed on ${to}`).toBe(true);
  else expect(onOld, `${what}: back on ${from}`).toBe(true);
  expect(readFileSync(join(r.appsDir, 'gateway-app', 'current', 'app.txt'), 'utf8'), what).toBe(
    e.status === 'SUCCEEDED' ? to : from,
  );
}

describe('agent updates survive kill -9 at any instant (agent as a child process)', () => {
  it('ends on the old version or committed on the new one, whatever stage it was killed in', async () => {
    // a release with a `slow` marker keeps the health check busy for a while, so a kill lands inside it
    const r = await rig(cleanups, {
      healthCommand: (c) => `[sh, -c, "test -f ${c}/ok && { test ! -f ${c}/slow || sleep 2; }"]`,
      extra: '  maxAttempts: 3\n',
    });
    const first = await release(r, '1.0.0');
    let agent = await r.start();
    expect(await r.waitTerminal(r.queue(first.manifest))).toMatchObject({ status: 'SUCCEEDED' });
    await agent.kill('SIGKILL');
    let from = '1.0.0';
    let minor = 0;
    const stages = [
      'verifying',
      'downloading',
      'installing',
      'awaiting-activation',
      'activating',
      'health-checking',
      'committing',
    ];
    for (const stage of stages) {
      const to = `1.${++minor}.0`;
      const rel = await release(r, to, { ok: '', slow: '', 'app.txt': to });
      const jobId = r.queue(rel.manifest);
      expect(await killAt(r, stage), `reached ${stage}`).toBe(true);
      agent = await r.start();
      const e = await r.waitTerminal(jobId);
      assertConsistent(r, e, from, to, `killed at ${stage}`);
      expect(e.status, `killed at ${stage}: resumed and finished`).toBe('SUCCEEDED');
      from = to;
      await agent.kill('SIGKILL');
    }
    // a release that fails its health check, killed while rolling back: it still ends back on the old version
    for (const stage of ['health-checking', 'rolling-back']) {
      const to = `1.${++minor}.0`;
      const rel = await release(r, to, { 'app.txt': to });
      const jobId = r.queue(rel.manifest);
      expect(await killAt(r, stage)).toBe(true);
      agent = await r.start();
      const e = await r.waitTerminal(jobId);
      assertConsistent(r, e, from, to, `bad release killed at ${stage}`);
      expect(e.status).toBe('FAILED');
      await agent.kill('SIGKILL');
    }
  }, 240_000);

  it('kills at random points inside download and install, many times, and loses nothing', async () => {
    const r = await rig(cleanups);
    let agent = await r.start();
    const first = await release(r, '1.0.0');
    expect(await r.waitTerminal(r.queue(first.manifest))).toMatchObject({ status: 'SUCCEEDED' });
    await agent.kill('SIGKILL');
    let from = '1.0.0';
    for (let i = 1; i <= 8; i++) {
      const to = `2.${i}.0`;
      const rel = await release(r, to, {
        ok: '',
        'app.txt': to,
        'blob.bin': randomBytes(2 * 1024 * 1024).toString('base64'),
      });
      const jobId = r.queue(rel.manifest);
      const stage = i % 2 ? 'downloading' : 'installing';
      await killAt(r, stage, Math.floor(Math.random() * 150));
      agent = await r.start();
      const e = await r.waitTerminal(jobId);
      assertConsistent(r, e, from, to, `kill ${i} in ${stage}`);
      if (e.status === 'SUCCEEDED') from = to;
      await agent.kill('SIGKILL');
    }
  }, 240_000);

  it('gives up after too many activation attempts (the reboot-loop guard), rolls back and fails the job', async () => {
    const r = await rig(cleanups, {
      healthCommand: (c) => `[sh, -c, "test -f ${c}/ok && { test ! -f ${c}/slow || sleep 30; }"]`,
      extra: '  maxAttempts: 2\n',
    });
    let agent = await r.start();
    const first = await release(r, '1.0.0');
    expect(await r.waitTerminal(r.queue(first.manifest))).toMatchObject({ status: 'SUCCEEDED' });
    await agent.kill('SIGKILL');
    // the new version "crashes the device" during every health check
    const rel = await release(r, '1.1.0', { ok: '', slow: '', 'app.txt': '1.1.0' });
    const jobId = r.queue(rel.manifest);
    for (let i = 0; i < 2; i++) expect(await killAt(r, 'health-checking')).toBe(true);
    agent = await r.start();
    const e = await r.waitTerminal(jobId);
    expect(e).toMatchObject({ status: 'FAILED', statusDetails: { code: 'E_UPDATE_ATTEMPTS' } });
    assertConsistent(r, e, '1.0.0', '1.1.0', 'reboot loop');
    await agent.kill('SIGKILL');
  }, 120_000);

  it('ends a crash loop inside any stage after the attempt limit: FAILED with the reason (or committed), never a loop', async () => {
    const r = await rig(cleanups, {
      healthCommand: (c) => `[sh, -c, "test -f ${c}/ok && { test ! -f ${c}/slow || sleep 2; }"]`,
      extra: '  maxAttempts: 2\n  maxStageStarts: 2\n',
    });
    let agent = await r.start();
    const first = await release(r, '1.0.0');
    expect(await r.waitTerminal(r.queue(first.manifest))).toMatchObject({ status: 'SUCCEEDED' });
    await agent.kill('SIGKILL');
    let from = '1.0.0';
    let minor = 0;
    const ends: Record<string, string> = {};
    for (const stage of ['verifying', 'downloading', 'installing', 'activating', 'health-checking', 'committing']) {
      const to = `3.${++minor}.0`;
      const rel = await release(r, to, {
        ok: '',
        slow: '',
        'app.txt': to,
        'blob.bin': randomBytes(1024 * 1024).toString('base64'),
      });
      const jobId = r.queue(rel.manifest);
      // the limit is 2 starts of a stage: 5 kills are more than a bounded machine can take without ending
      let kills = 0;
      for (let i = 0; i < 5; i++) {
        if (!(await killInside(r, jobId, stage, 40))) break;
        kills++;
      }
      agent = await r.start();
      const e = await r.waitTerminal(jobId);
      assertConsistent(r, e, from, to, `crash loop in ${stage} (${kills} kills)`);
      if (e.status === 'FAILED')
        expect(e.statusDetails?.code, `${stage}: ${e.statusDetails?.reason}`).toBe('E_UPDATE_ATTEMPTS');
      else from = to;
      ends[stage] = `${e.status} after ${kills} kills`;
      await agent.kill('SIGKILL');
    }
    console.log(`crash loops: ${JSON.stringify(ends)}`);
    // a slow stage (download of 1 MiB, the 2 s health check) is hit every time: those must end by the guard
    expect(ends['health-checking']).toMatch(/^FAILED/);
  }, 300_000);
});

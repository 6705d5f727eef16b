import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, CONTROLLER_CLI, cleanupAfterEach, spawnAgent, spawnController, tmp, waitForAsync } from './helpers.js';
import { appArchive, filesRelease, publishRelease, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();

describe('fleetwave device add: a complete agent config', () => {
  it('writes agent.yaml, token and trusted keys; an agent started from exactly that config takes a rollout on the controller’s jobs root', {
    timeout: 180_000,
  }, async () => {
    const dir = tmp('device-add');
    const ctlDir = join(dir, 'ctl');
    const key = trustedKey(ctlDir);
    const ctl = await spawnController(ctlDir, ['--jobs-root', '$aws/things', '--mqtt-port', '0', '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));

    const deviceDir = join(dir, 'etc-fleetwave'); // what the operator copies to /etc/fleetwave (here: --agent-dir)
    const add = spawnSync(
      process.execPath,
      [
        CONTROLLER_CLI,
        'device',
        'add',
        'gw-new',
        '--hardware',
        'rpi4',
        '--out',
        deviceDir,
        '--agent-dir',
        deviceDir,
        '--url',
        ctl.url,
        '--data-dir',
        ctlDir,
      ],
      { encoding: 'utf8' },
    );
    expect(add.status, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/device gw-new registered/);
    const config = readFileSync(join(deviceDir, 'agent.yaml'), 'utf8');
    expect(config).toContain('jobsRoot: "$aws/things"');
    expect(config).toContain('enabled: true');
    expect(config).toContain(`tokenFile: ${deviceDir}/token`);
    expect(statSync(join(deviceDir, 'token')).mode & 0o777).toBe(0o600);
    expect(add.stdout).not.toContain(readFileSync(join(deviceDir, 'token'), 'utf8').trim()); // not on the screen

    // the config file exactly as written; only the sensor listener's port is picked free (tests run side by side)
    const agent = await spawnAgent(['--config', join(deviceDir, 'agent.yaml'), '--listen', '127.0.0.1:0']);
    cleanups.push(() => agent.kill('SIGKILL'));
    await waitForAsync('the agent to come online', async () => {
      const d = (await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-new')).body;
      return JSON.stringify(d).includes('"online"');
    });

    const archive = await appArchive(dir, '1.0.0', { 'app.txt': 'one' });
    await publishRelease(ctl.url, ctl.adminToken, filesRelease(key, '1.0.0', archive), archive);
    const plan = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: first
release: { name: gateway-app, version: 1.0.0 }
waves: [{ percent: 100 }]
`;
    const r = await api(ctl.url, ctl.adminToken, 'POST', '/api/rollouts', { yaml: plan, source: 'plan.yaml' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    let last: Record<string, unknown> = {};
    await waitForAsync(
      'the rollout to complete',
      async () => {
        last = (await api(ctl.url, ctl.adminToken, 'GET', `/api/rollouts/${r.body.id}?devices=1`)).body;
        return last.status === 'completed' || last.status === 'rolled-back' || last.status === 'paused';
      },
      120_000,
    );
    expect(last.status, JSON.stringify(last)).toBe('completed');
    const current = join(deviceDir, 'data', 'apps', 'gateway-app', 'current', 'app.txt');
    expect(existsSync(current)).toBe(true);
    expect(readFileSync(current, 'utf8')).toBe('one');
  });
});

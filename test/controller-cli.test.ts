import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTROLLER_CLI, cleanupAfterEach, DEMO_CLI, signalAtReady, spawnController, tmp, waitFor } from './helpers.js';

const cleanups = cleanupAfterEach();

const cli = (...args: string[]) => spawnSync(process.execPath, [CONTROLLER_CLI, ...args], { encoding: 'utf8' });

describe('fleetwave command line', () => {
  it('explains itself, and names the flag to change when a port is taken', async () => {
    expect(cli('--help').stdout).toMatch(/fleetwave serve/);
    // a command's --help: its usage and the options it takes, not the whole CLI's
    const device = cli('device', '--help');
    expect(device.status).toBe(0);
    expect(device.stdout).toMatch(/fleetwave device add <id>[\s\S]*fleetwave device mark-failed[\s\S]*--token <token>/);
    expect(device.stdout).not.toMatch(/fleetwave rollout|--mqtt-port/);
    const serve = cli('serve', '--help');
    expect(serve.stdout).toMatch(/--mqtt-port <port>[\s\S]*--risk-threshold/);
    expect(serve.stdout).not.toMatch(/fleetwave device|--token <token>/);
    // the predict options that were in no help
    expect(cli('predict', 'backtest', '--help').stdout).toMatch(
      /--horizon[\s\S]*--step[\s\S]*--windows[\s\S]*--rul-cap[\s\S]*--epochs/,
    );
    expect(cli('nonsense', '--help').status).toBe(2);
    expect(cli('nonsense').status).toBe(2);
    const ctl = await spawnController(tmp('cli-a'), ['--mqtt-port', '0', '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const taken = cli('serve', '--data-dir', tmp('cli-b'), '--mqtt-port', String(ctl.mqtt), '--http-port', '0');
    expect(taken.status).toBe(78);
    expect(taken.stderr).toMatch(/port \d+ .*is taken: pass --mqtt-port/);
    const nonsense = cli('serve', '--data-dir', tmp('cli-d'), '--http-port', 'eighty');
    expect(nonsense.status).toBe(78);
    expect(nonsense.stderr).toMatch(/--http-port must be a port number/);
  });

  it('serve stops cleanly (exit 0) when signalled the instant it prints ready', async () => {
    for (let round = 0; round < 3; round++) {
      const runs = await Promise.all(
        [0, 1].map((k) =>
          signalAtReady([
            CONTROLLER_CLI,
            'serve',
            '--data-dir',
            tmp(`ready-${round}-${k}`),
            '--http-port',
            '0',
            '--mqtt-port',
            '0',
          ]),
        ),
      );
      for (const r of runs) expect(r, r.err).toMatchObject({ code: 0, signal: null });
    }
  }, 120_000);

  it("surfaces the server's error code, and an unreachable controller as such (exit 69)", async () => {
    const dir = tmp('cli-codes');
    const ctl = await spawnController(dir, ['--mqtt-port', '0', '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const base = ['--url', ctl.url, '--data-dir', dir];
    const expectCode = (r: ReturnType<typeof cli>, re: RegExp, status = 1) => {
      expect(r.stderr).toMatch(re);
      expect(r.status, r.stderr).toBe(status);
    };
    expectCode(
      cli('device', 'list', '--url', ctl.url, '--data-dir', tmp('cli-codes-empty')),
      /: E_AUTH: 401 .*--token/,
    );
    expect(cli('device', 'add', 'gw-1', ...base).status).toBe(0);
    expectCode(cli('device', 'add', 'gw-1', ...base), /: E_DEVICE_EXISTS: 409 /);
    expectCode(cli('device', 'show', 'gw-nope', ...base), /: E_(NOT_FOUND|DEVICE_UNKNOWN): 404 /);
    // a missing argument is a usage error of the CLI: nothing is sent (it was GET /api/devices/)
    expectCode(cli('device', 'show', ...base), /: E_CONFIG_INVALID: usage: fleetwave device show <id>/, 78);
    expectCode(cli('token', 'revoke', ...base), /usage: fleetwave token revoke <name>/, 78);
    const viewer = /fwt_[A-Za-z0-9_-]+/.exec(cli('token', 'create', 'ops', '--role', 'viewer', ...base).stdout)![0];
    expectCode(cli('device', 'add', 'gw-2', '--url', ctl.url, '--token', viewer), /: E_FORBIDDEN: 403 /);
    expectCode(
      cli('device', 'list', '--url', 'http://127.0.0.1:9', '--token', viewer),
      /: E_CONTROLLER_UNREACHABLE: cannot reach the controller at http:\/\/127\.0\.0\.1:9 /,
      69,
    );
    // next to the data directory neither --url nor --token is needed: serve wrote both there (port 0 here)
    expect(readFileSync(join(dir, 'controller-url'), 'utf8').trim()).toBe(ctl.url);
    const local = cli('device', 'list', '--data-dir', dir);
    expect(local.status, local.stderr).toBe(0);
    expect(local.stdout).toMatch(/gw-1/);
    // a clean stop takes the URL away again
    expect(await ctl.kill('SIGTERM')).toBe(0);
    expect(existsSync(join(dir, 'controller-url'))).toBe(false);
  }, 120_000);

  it('manages devices and tokens with tables or --json, using the admin token of the data directory', async () => {
    const dir = tmp('cli-c');
    const ctl = await spawnController(dir, ['--mqtt-port', '0', '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const base = ['--url', ctl.url, '--data-dir', dir];
    const add = cli('device', 'add', 'gw-9', '--tag', 'site=north', ...base);
    expect(add.status, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/token \(shown once/);
    expect(add.stdout).toMatch(/username: gw-9/);
    expect(cli('device', 'list', ...base).stdout).toMatch(/^id\s+presence[\s\S]*gw-9\s+unknown/m);
    const json = JSON.parse(cli('device', 'list', '--json', ...base).stdout);
    expect(json.devices[0]).toMatchObject({ id: 'gw-9', tags: { site: 'north' } });
    expect(cli('token', 'create', 'ops', '--role', 'viewer', ...base).stdout).toMatch(/fwt_/);
    expect(cli('device', 'revoke', 'gw-9', ...base).stdout).toMatch(/revoked/);
    const noToken = cli('device', 'list', '--url', ctl.url, '--data-dir', tmp('empty'));
    expect(noToken.status).toBe(1);
    expect(noToken.stderr).toMatch(/401.*--token/);
    expect(cli('audit', ...base).stdout).toMatch(/device\.revoke/);
    cli('device', 'add', 'gw-10', '--tag', 'site=north', ...base);
    const layerFile = join(dir, 'north.yaml');
    writeFileSync(
      layerFile,
      'apiVersion: fleetwave/v1\nkind: ConfigLayer\nname: north\npriority: 5\nselector: { tags: { site: north } }\nconfig: { backlogIntervalMs: 60000 }\n',
    );
    expect(cli('config', 'diff', layerFile, ...base).stdout).toMatch(/gw-10\n {2}backlogIntervalMs: null -> 60000/);
    expect(cli('config', 'apply', layerFile, ...base).stdout).toMatch(/layer north applied; 1 device\(s\).*gw-10/);
    expect(cli('config', 'effective', 'gw-10', ...base).stdout).toMatch(/backlogIntervalMs\s+from north/);
    expect(cli('device', 'list', ...base).stdout).toMatch(/gw-10\s+unknown\s+-\s+-\s+lagging \(v0 of v1\)/);
    const badFile = join(dir, 'bad.yaml');
    writeFileSync(badFile, 'apiVersion: fleetwave/v1\nkind: ConfigLayer\nname: Bad_Name\npriority: 5\nconfig: {}\n');
    const bad = cli('config', 'apply', badFile, ...base);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toMatch(/bad\.yaml:3:7 name:/);
  });

  it('runs the demo: gateways enrolled, telemetry stored, a clean stop on Ctrl-C', async () => {
    const demo = spawn(process.execPath, [DEMO_CLI, '--gateways', '3', '--no-story'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => demo.kill('SIGKILL'));
    let out = '';
    demo.stdout.on('data', (d) => (out += d));
    await waitFor('telemetry stored', () => /controller stored [1-9]/.test(out), 30_000);
    expect(out).toMatch(/3 gateways enrolled/);
    expect(out).toMatch(/3\/3 gateways online/);
    const code = await new Promise<number | null>((resolve) => {
      demo.once('exit', resolve);
      demo.kill('SIGINT');
    });
    expect(code).toBe(0);
    expect(out).toMatch(/stopped/);
  });

  it('tells the demo story: a release in waves with gateways offline, a broken one stopped at the canary and rolled back', async () => {
    const demo = spawn(process.execPath, [DEMO_CLI, '--gateways', '8', '--story-delay', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => demo.kill('SIGKILL'));
    let out = '';
    demo.stdout.on('data', (d) => (out += d));
    await waitFor('the story to end', () => /story: every gateway runs demo-app 1\.0\.0 again/.test(out), 150_000);
    // the dashboard's address, and devices at risk flagged (simulated health with injected faults, a trained model)
    expect(out).toMatch(/dashboard: http:\/\/127\.0\.0\.1:\d+\/ui\//);
    expect(out).toMatch(/health: 14 days of simulated history per gateway .* 2 gateways at risk: demo-gw-\d+ \(/);
    expect(out).toMatch(/story: 2 gateways are flagged at risk .*; the rollouts keep them out of the early waves/);
    expect(out).toMatch(/story: 3 gateways lose their network/);
    expect(out).toMatch(/story: the 3 gateways are back/);
    expect(out).toMatch(/story: release demo-app 1\.0\.0 completed/);
    expect(out).toMatch(/story: release demo-app 1\.1\.0 stopped at the canary and rolled back: wave canary failed/);
    await waitFor('every gateway online again', () => /8\/8 gateways online/.test(out), 30_000);
    // Ctrl-C ends it cleanly (a hang fails the wait below)
    demo.kill('SIGINT');
    await waitFor('the demo to exit after Ctrl-C', () => demo.exitCode !== null, 30_000);
    expect(demo.exitCode).toBe(0);
  }, 180_000);
});

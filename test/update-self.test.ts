import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signManifest } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, tmp, waitForAsync } from './helpers.js';
import { publishRelease, sha256 } from './release-helpers.js';
import { type Rig, rig } from './update-rig.js';

const cleanups = cleanupAfterEach();
const AGENT_DIST = fileURLToPath(new URL('../agent/dist', import.meta.url));
// copies of the agent must sit under agent/ so that they resolve its node_modules
const VERSIONS = fileURLToPath(new URL('../agent/.test-versions', import.meta.url));

/** An executable of the agent at `version`: a copy of its build with the version changed, behind a launcher. */
function agentBuild(stage: string, version: string): string {
  const dist = join(VERSIONS, `${process.pid}-${version}`, 'dist');
  if (version !== '0.1.0') {
    cpSync(AGENT_DIST, dist, { recursive: true });
    const file = join(dist, 'agent.js');
    const text = readFileSync(file, 'utf8');
    if (!text.includes("AGENT_VERSION = '0.1.0'")) throw new Error('AGENT_VERSION not found in the build');
    writeFileSync(file, text.replace("AGENT_VERSION = '0.1.0'", `AGENT_VERSION = '${version}'`));
  }
  const exe = join(stage, `fleetwave-agent-${version}`);
  writeFileSync(
    exe,
    `#!/bin/sh\nexport FLEETWAVE_AGENT_EXECUTABLE="$(readlink -f "$0")"\nexec "${process.execPath}" "${join(version === '0.1.0' ? AGENT_DIST : dist, 'cli.js')}" "$@"\n`,
  );
  chmodSync(exe, 0o755);
  return exe;
}

/** The service manager, as the shipped systemd unit configures it: restart always; after 3 failed starts in a row
 * run the OnFailure unit (`fleetwave-agent.previous self-rollback`), then start again. */
class Supervisor {
  proc: ChildProcess | undefined;
  exits: (number | null)[] = [];
  rollbacks = 0;
  private failures = 0;
  private stopped = false;
  constructor(
    private readonly root: string,
    private readonly config: string,
  ) {}
  start(): void {
    if (this.stopped) return;
    const p = spawn(
      join(this.root, 'bin', 'fleetwave-agent'),
      ['run', '--config', this.config, '--log-level', 'warn'],
      {
        stdio: 'ignore',
      },
    );
    this.proc = p;
    p.on('exit', (code) => {
      this.exits.push(code);
      if (this.stopped) return;
      this.failures = code === 75 || code === 0 ? 0 : this.failures + 1;
      if (this.failures >= 3) {
        this.failures = 0;
        this.rollbacks++;
        spawnSync(join(this.root, 'bin', 'fleetwave-agent.previous'), ['self-rollback', '--config', this.config]);
      }
      setTimeout(() => this.start(), 100);
    });
  }
  async stop(): Promise<void> {
    this.stopped = true;
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      await new Promise((r) => {
        p.once('exit', r);
        p.kill('SIGKILL');
      });
    }
  }
}

async function agentRelease(r: Rig, version: string, exe: string) {
  const m = signManifest(
    {
      schema: 1,
      name: 'fleetwave-agent',
      version,
      hardware: ['rpi4'],
      artifacts: [{ name: 'app.tar.gz', url: './app.tar.gz', size: readFileSync(exe).length, sha256: sha256(exe) }],
      install: { type: 'agent' },
      createdAt: '2026-01-01T00:00:00Z',
    },
    r.key.privateKey,
  );
  await publishRelease(r.http, r.admin, m, exe);
  return m;
}

describe('agent self-update (the agent replaces its own executable, restarted by a service manager)', () => {
  it('switches to a good version, rolls back one that fails its health check, and one that cannot even start', async () => {
    const root = tmp('agent-root');
    const stage = tmp('agent-builds');
    cleanups.push(async () => rmSync(VERSIONS, { recursive: true, force: true }));
    const link = join(root, 'bin', 'fleetwave-agent');
    const r = await rig(cleanups, {
      // the operator's check: anything but 0.3.0 is healthy
      healthCommand: () => `[sh, -c, 'test "$(readlink ${link})" != ../versions/0.3.0/fleetwave-agent']`,
      extra: `  agentRoot: ${root}\n`,
    });
    // the layout the install script makes
    mkdirSync(join(root, 'versions', '0.1.0'), { recursive: true });
    mkdirSync(join(root, 'bin'));
    cpSync(agentBuild(stage, '0.1.0'), join(root, 'versions', '0.1.0', 'fleetwave-agent'));
    symlinkSync('../versions/0.1.0/fleetwave-agent', link);
    const sup = new Supervisor(root, r.configFile);
    cleanups.push(() => sup.stop());
    sup.start();
    const runningVersion = async () => (await r.ctl.store!.fleet.getDevice('gw-u'))?.agentVersion;
    await waitForAsync('the agent to connect', async () => (await runningVersion()) === '0.1.0', 30_000);

    const good = await agentRelease(r, '0.2.0', agentBuild(stage, '0.2.0'));
    expect(await r.waitTerminal(r.queue(good))).toMatchObject({
      status: 'SUCCEEDED',
      statusDetails: { stage: 'succeeded' },
    });
    expect(readlinkSync(link)).toBe('../versions/0.2.0/fleetwave-agent');
    expect(sup.exits).toEqual([75]); // one restart, asked for by the agent
    await waitForAsync('the new version to be reported', async () => (await runningVersion()) === '0.2.0', 30_000);

    const unhealthy = await agentRelease(r, '0.3.0', agentBuild(stage, '0.3.0'));
    expect(await r.waitTerminal(r.queue(unhealthy))).toMatchObject({
      status: 'FAILED',
      statusDetails: { code: 'E_HEALTH_CHECK' },
    });
    expect(readlinkSync(link)).toBe('../versions/0.2.0/fleetwave-agent');
    expect(sup.exits).toEqual([75, 75, 75]); // into 0.3.0, and back
    await waitForAsync('0.2.0 to run again', async () => (await runningVersion()) === '0.2.0', 30_000);

    // 0.4.0 answers --version but dies at start: the service manager's OnFailure puts 0.2.0 back
    const crashing = join(stage, 'fleetwave-agent-0.4.0');
    writeFileSync(
      crashing,
      '#!/bin/sh\nif [ "$1" = --version ]; then echo 0.4.0; exit 0; fi\necho "segfault" >&2; exit 1\n',
    );
    chmodSync(crashing, 0o755);
    const bad = await agentRelease(r, '0.4.0', crashing);
    const e = await r.waitTerminal(r.queue(bad));
    expect(e).toMatchObject({ status: 'FAILED', statusDetails: { code: 'E_HEALTH_CHECK' } });
    expect(e.statusDetails!.reason).toMatch(/restarted without the new version: it fell back/);
    expect(sup.rollbacks).toBe(1);
    expect(readlinkSync(link)).toBe('../versions/0.2.0/fleetwave-agent');
    // a release that is not an executable of this platform is refused before anything is switched
    const notExe = join(stage, 'not-an-agent');
    writeFileSync(notExe, 'MZ this is not for linux');
    const foreign = await agentRelease(r, '0.5.0', notExe);
    expect(await r.waitTerminal(r.queue(foreign))).toMatchObject({
      status: 'FAILED',
      statusDetails: { code: 'E_INSTALL' },
    });
    expect(readlinkSync(link)).toBe('../versions/0.2.0/fleetwave-agent');
  }, 180_000);
});

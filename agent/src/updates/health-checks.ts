import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { FleetwaveError, type SignedReleaseManifest } from '@fleetwave/shared';

/** Runs a command; resolves to its exit code (or -1 on timeout / spawn error), never throws. */
export function runCommand(cmd: readonly string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const [file, ...args] = cmd;
    const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    const keep = (b: Buffer) => {
      output = (output + b.toString('utf8')).slice(-1000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => resolve({ code: -1, output: err.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

function processRunning(name: string, procRoot = '/proc'): boolean {
  for (const pid of readdirSync(procRoot)) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`${procRoot}/${pid}/comm`, 'utf8').trim() === name) return true;
    } catch {
      // the process ended while we looked
    }
  }
  return false;
}

export interface HealthContext {
  manifest: SignedReleaseManifest;
  /** The operator's own check from the agent config. */
  command?: readonly string[];
  deadline: number;
  now: () => number;
  connected: () => boolean;
  sleep: (ms: number) => Promise<void>;
}

/**
 * The health check after activation: the agent is connected to the cloud, every check of the manifest passes
 * (uplink connected within its time, a process running for its time, a command exiting 0), and the operator's
 * command exits 0 — all before the deadline. Throws E_HEALTH_CHECK naming the check that failed.
 */
export async function healthCheck(h: HealthContext): Promise<void> {
  const fail = (what: string) => {
    throw new FleetwaveError('E_HEALTH_CHECK', `health check failed: ${what}`);
  };
  const waitFor = async (ok: () => boolean, until: number) => {
    while (!ok()) {
      if (h.now() >= until) return false;
      await h.sleep(200);
    }
    return true;
  };
  const start = h.now();
  if (!(await waitFor(h.connected, h.deadline))) fail('not reconnected to the cloud before the deadline');
  for (const c of h.manifest.healthChecks) {
    if (c.type === 'uplink-connected') {
      if (!(await waitFor(h.connected, Math.min(h.deadline, start + c.withinS * 1000))))
        fail(`uplink not connected within ${c.withinS}s`);
    } else if (c.type === 'process-running') {
      const until = Math.min(h.deadline, h.now() + c.forS * 1000);
      while (h.now() < until) {
        if (!processRunning(c.name)) fail(`process ${c.name} is not running`);
        await h.sleep(Math.min(1000, until - h.now()));
      }
    } else {
      const r = await runCommand(c.command, Math.min(c.timeoutS * 1000, Math.max(1, h.deadline - h.now())));
      if (r.code !== 0) fail(`${c.command.join(' ')} exited ${r.code}: ${r.output.trim().slice(-200)}`);
    }
  }
  if (h.command) {
    const r = await runCommand(h.command, Math.max(1, h.deadline - h.now()));
    if (r.code !== 0) fail(`${h.command.join(' ')} exited ${r.code}: ${r.output.trim().slice(-200)}`);
  }
}

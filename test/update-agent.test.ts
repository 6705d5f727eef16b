import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { type SignedReleaseManifest, signManifest } from '@fleetwave/shared';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach, tmp, waitFor } from './helpers.js';
import { appArchive, filesRelease, sha256, signingKey } from './release-helpers.js';
import { installed, rig as makeRig, release } from './update-rig.js';

const cleanups = cleanupAfterEach();
const rig = (opts?: Parameters<typeof makeRig>[1]) => makeRig(cleanups, opts);

describe('agent updates (agent as a child process, controller jobs service)', () => {
  it('installs, health-checks and commits a release; a failing health check rolls back by itself', async () => {
    const r = await rig();
    const agent = await r.start();
    const v1 = await release(r, '1.0.0');
    const j1 = r.queue(v1.manifest);
    expect(await r.waitTerminal(j1)).toMatchObject({
      status: 'SUCCEEDED',
      statusDetails: { stage: 'succeeded', version: '1.0.0' },
    });
    expect(r.active()).toBe('slots/1.0.0');
    expect(readFileSync(join(r.appsDir, 'gateway-app', 'current', 'app.txt'), 'utf8')).toBe('1.0.0');
    // the stages were persisted in order
    const stages = agent
      .stdout()
      .split('\n')
      .filter((l) => l.includes('update-stage'))
      .map((l) => JSON.parse(l).stage);
    expect(stages).toEqual([
      'verifying',
      'downloading',
      'installing',
      'awaiting-activation',
      'activating',
      'health-checking',
      'committing',
      'succeeded',
    ]);

    const bad = await release(r, '2.0.0', { 'app.txt': 'broken' });
    const j2 = r.queue(bad.manifest);
    const e2 = await r.waitTerminal(j2);
    expect(e2).toMatchObject({ status: 'FAILED', statusDetails: { code: 'E_HEALTH_CHECK', stage: 'failed' } });
    expect(r.active()).toBe('slots/1.0.0');
    expect(installed(r)).toBe('1.0.0');
    expect(existsSync(join(r.appsDir, 'gateway-app', 'slots', '2.0.0'))).toBe(false);

    // an older release is refused unless it allows a downgrade
    const old = await release(r, '0.9.0');
    expect(await r.waitTerminal(r.queue(old.manifest))).toMatchObject({
      status: 'REJECTED',
      statusDetails: { code: 'E_UPDATE_DOWNGRADE' },
    });
    // the same version again is already done
    expect(await r.waitTerminal(r.queue(v1.manifest))).toMatchObject({ status: 'SUCCEEDED' });
  }, 120_000);

  it('speaks the jobs protocol under the AWS IoT Core root ($aws/things) unchanged', async () => {
    const r = await rig({ jobsRoot: '$aws/things' });
    await r.start();
    const v1 = await release(r, '1.0.0');
    expect(await r.waitTerminal(r.queue(v1.manifest))).toMatchObject({ status: 'SUCCEEDED' });
    expect(r.active()).toBe('slots/1.0.0');
  }, 60_000);

  it('waits for permission to activate while the application holds its lock file', async () => {
    const lock = join(tmp('lock'), 'app.busy');
    const r = await rig({ extra: `  activation: { mode: lock-file, path: ${lock} }\n` });
    const agent = await r.start();
    const v1 = await release(r, '1.0.0');
    writeFileSync(lock, 'busy');
    const jobId = r.queue(v1.manifest);
    await waitFor(
      'the update to wait for activation',
      () => r.execution(jobId)?.statusDetails?.stage === 'awaiting-activation',
      30_000,
    ).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(r.execution(jobId))} ${agent.stderr()}`);
    });
    // installed into its slot, not active, the job in progress while the lock is held
    expect(existsSync(join(r.appsDir, 'gateway-app', 'slots', '1.0.0'))).toBe(true);
    expect(r.active()).toBeNull();
    await new Promise((res) => setTimeout(res, 1500));
    expect(r.execution(jobId)).toMatchObject({
      status: 'IN_PROGRESS',
      statusDetails: { stage: 'awaiting-activation' },
    });
    rmSync(lock);
    expect(await r.waitTerminal(jobId)).toMatchObject({ status: 'SUCCEEDED' });
    expect(r.active()).toBe('slots/1.0.0');
  }, 60_000);

  it('holds activation outside its maintenance window and goes on inside one (after a restart with a new window)', async () => {
    // closed: only at midnight on 1 January
    const r = await rig({ extra: '  activation: { mode: window, cron: "0 0 1 1 *", duration: 1m, timezone: UTC }\n' });
    let agent = await r.start();
    const v1 = await release(r, '1.0.0');
    const jobId = r.queue(v1.manifest);
    await waitFor(
      'the update to wait for its window',
      () => r.execution(jobId)?.statusDetails?.stage === 'awaiting-activation',
      30_000,
    );
    await new Promise((res) => setTimeout(res, 1500));
    expect(r.execution(jobId)).toMatchObject({
      status: 'IN_PROGRESS',
      statusDetails: { stage: 'awaiting-activation' },
    });
    expect(r.active()).toBeNull();
    // the operator widens the window to "always": the agent resumes where it waited
    await agent.kill('SIGTERM');
    writeFileSync(
      r.configFile,
      readFileSync(r.configFile, 'utf8').replace('cron: "0 0 1 1 *", duration: 1m', 'cron: "* * * * *", duration: 2m'),
    );
    agent = await r.start();
    expect(await r.waitTerminal(jobId)).toMatchObject({ status: 'SUCCEEDED' });
    expect(r.active()).toBe('slots/1.0.0');
  }, 60_000);

  it('refuses bad artifacts, signatures, hardware, job documents and a full disk before installing anything', async () => {
    const r = await rig();
    await r.start();
    const v1 = await release(r, '1.0.0');
    await r.waitTerminal(r.queue(v1.manifest));
    const { manifest, archive } = await release(r, '1.1.0');
    const other = signingKey();
    const body = (m: SignedReleaseManifest) => {
      const { signature: _s, ...b } = m;
      return b;
    };
    // artifacts served by a server of the test, for bytes the controller would never accept
    const bytes = readFileSync(archive);
    const server: Server = createServer((req, res) => {
      const payload =
        req.url === '/tampered'
          ? Buffer.from(bytes).fill(7, 100, 101)
          : req.url === '/long'
            ? Buffer.concat([bytes, Buffer.from('x')])
            : bytes;
      res.end(payload);
    }).listen(0, '127.0.0.1');
    cleanups.push(() => new Promise((res) => server.close(res)));
    await new Promise((res) => server.once('listening', res));
    const at = (path: string) => `http://127.0.0.1:${(server.address() as { port: number }).port}${path}`;
    const resign = (over: Record<string, unknown>, k = r.key) =>
      signManifest({ ...body(manifest), ...over }, k.privateKey);
    const art = manifest.artifacts[0]!;
    const cases: [string, SignedReleaseManifest | Record<string, unknown>, string, string][] = [
      ['tampered artifact', resign({ artifacts: [{ ...art, url: at('/tampered') }] }), 'FAILED', 'E_ARTIFACT_HASH'],
      ['wrong size', resign({ artifacts: [{ ...art, url: at('/long') }] }), 'FAILED', 'E_ARTIFACT_SIZE'],
      [
        'wrong hash in manifest',
        resign({ artifacts: [{ ...art, sha256: sha256(archive).replace(/^./, (c) => (c === '0' ? '1' : '0')) }] }),
        'FAILED',
        'E_ARTIFACT_HASH',
      ],
      ['bad signature', { ...manifest, notes: 'changed after signing' }, 'REJECTED', 'E_MANIFEST_SIGNATURE'],
      ['untrusted key', resign({}, other), 'REJECTED', 'E_MANIFEST_UNTRUSTED_KEY'],
      ['expired', resign({ expiresAt: '2020-01-01T00:00:00Z' }), 'REJECTED', 'E_MANIFEST_EXPIRED'],
      ['other hardware', resign({ hardware: ['rpi3'] }), 'REJECTED', 'E_UPDATE_HARDWARE'],
      [
        'unknown installer',
        resign({ install: { type: 'ab-rootfs', bootloader: 'uboot' } }),
        'REJECTED',
        'E_UPDATE_INSTALLER',
      ],
      ['full disk', resign({ artifacts: [{ ...art, size: 2 ** 40 - 1 }] }), 'REJECTED', 'E_DISK_FULL'],
    ];
    for (const [what, m, status, code] of cases) {
      const jobId = r.queue(m as SignedReleaseManifest);
      expect(await r.waitTerminal(jobId), what).toMatchObject({ status, statusDetails: { code } });
      expect(r.active(), what).toBe('slots/1.0.0');
      expect(existsSync(join(r.appsDir, 'gateway-app', 'slots', '1.1.0')), what).toBe(false);
    }
    // a job that is not a Fleetwave update at all is rejected, never left in progress
    r.jobs++;
    r.ctl.jobs!.queue({ jobId: 'not-ours', thing: 'gw-u', executionNumber: 1, document: { operation: 'reboot' } });
    expect(await r.waitTerminal('not-ours')).toMatchObject({ status: 'REJECTED', statusDetails: { code: 'E_SCHEMA' } });
    expect(installed(r)).toBe('1.0.0');
  }, 120_000);

  it('resumes a download cut in the middle with a Range request, and fails a long outage with a reason', async () => {
    const r = await rig();
    await r.start();
    const big = await appArchive(r.dir, '1.0.0', {
      ok: '',
      'blob.bin': randomBytes(3 * 1024 * 1024).toString('base64'),
    });
    const bytes = readFileSync(big);
    const ranges: (string | undefined)[] = [];
    let mode: 'cut' | 'down' = 'cut';
    const server: Server = createServer((req, res) => {
      ranges.push(req.headers.range);
      if (mode === 'down') {
        res.statusCode = 503;
        return res.end();
      }
      if (ranges.length === 1) {
        // the first response dies half way through
        res.writeHead(200, { 'content-length': bytes.length });
        res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy());
        return;
      }
      const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(206, { 'content-range': `bytes ${from}-${bytes.length - 1}/${bytes.length}` });
      res.end(bytes.subarray(from));
    }).listen(0, '127.0.0.1');
    cleanups.push(() => new Promise((res) => server.close(res)));
    await new Promise((res) => server.once('listening', res));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/app.tar.gz`;
    const m = filesRelease(r.key, '1.0.0', big, {
      hardware: ['rpi4'],
      artifacts: [{ name: 'app.tar.gz', url, size: bytes.length, sha256: sha256(big) }],
    });
    expect(await r.waitTerminal(r.queue(m))).toMatchObject({ status: 'SUCCEEDED' });
    expect(ranges[0]).toBeUndefined();
    expect(Number(/bytes=(\d+)-/.exec(ranges[1] ?? '')?.[1])).toBeGreaterThan(0);
    expect(r.active()).toBe('slots/1.0.0');

    mode = 'down';
    const m2 = filesRelease(r.key, '1.1.0', big, {
      hardware: ['rpi4'],
      artifacts: [{ name: 'app.tar.gz', url: `${url}?v2`, size: bytes.length + 1, sha256: 'a'.repeat(64) }],
    });
    const e = await r.waitTerminal(r.queue(m2));
    expect(e).toMatchObject({ status: 'FAILED', statusDetails: { code: 'E_DOWNLOAD_GAVE_UP' } });
    expect(e.statusDetails!.reason).toMatch(/failed after 4 attempts: HTTP 503/);
    expect(r.active()).toBe('slots/1.0.0');
  }, 120_000);
});

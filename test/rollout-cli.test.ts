import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, CONTROLLER_CLI, cleanupAfterEach, freePort, spawnController, tmp, webhookReceiver } from './helpers.js';
import { appArchive, filesRelease, signingKey, trustedKey } from './release-helpers.js';

const cleanups = cleanupAfterEach();

function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CONTROLLER_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const GOOD_PLAN = `apiVersion: fleetwave/v1
kind: RolloutPlan
name: app-one
release: { name: gateway-app, version: 1.0.0 }
selector: { tags: { site: north } }
waves:
  - { name: canary, count: 1 }
  - { name: rest, percent: 100, approval: true }
onFailure: abort
`;

/** Each bad plan, and what the error must say (file, line, column and field). */
const BAD_PLANS: [string, string, RegExp][] = [
  ['yaml syntax', 'apiVersion: fleetwave/v1\nkind: [RolloutPlan\n', /bad\.yaml:\d+:\d+/],
  [
    'duplicate key',
    GOOD_PLAN.replace('kind: RolloutPlan', 'kind: RolloutPlan\nkind: RolloutPlan'),
    /bad\.yaml:3:1.*[Mm]ap keys must be unique/,
  ],
  ['unknown field', GOOD_PLAN.replace('onFailure: abort', 'onFailure: abort\nwavez: []'), /bad\.yaml:10:1.*wavez/],
  [
    'wave with count and percent',
    GOOD_PLAN.replace('count: 1 }', 'count: 1, percent: 5 }'),
    /bad\.yaml:7:\d+.*waves\.0.*exactly one of count or percent/,
  ],
  [
    'bad cron',
    `${GOOD_PLAN}maintenanceWindows: [{ cron: "0 25 * * *", duration: 1h }]\n`,
    /bad\.yaml:10:\d+.*maintenanceWindows\.0\.cron.*invalid/,
  ],
  [
    'bad time zone',
    `${GOOD_PLAN}maintenanceWindows: [{ cron: "0 2 * * *", duration: 1h, timezone: Mars/Base }]\n`,
    /timezone.*unknown time zone/,
  ],
  ['bad onFailure', GOOD_PLAN.replace('onFailure: abort', 'onFailure: explode'), /bad\.yaml:9:\d+.*onFailure/],
  ['bad version', GOOD_PLAN.replace('version: 1.0.0', 'version: one'), /bad\.yaml:4:\d+.*release\.version.*semver/],
];

describe('releases and rollouts from the command line (controller process, devices offline)', () => {
  it('refuses bad releases and bad plans with their location, then runs apply, pause, resume, approve, abort, with events, webhooks and audit', async () => {
    const dir = tmp('rollout-cli');
    const ctlDir = join(dir, 'ctl');
    const key = trustedKey(ctlDir);
    const { hooks, url: hookUrl } = await webhookReceiver<{ kind: string; rollout: string }>(cleanups);
    const ctl = await spawnController(ctlDir, [
      '--mqtt-port',
      String(await freePort()),
      '--http-port',
      '0',
      '--webhook',
      hookUrl,
    ]);
    cleanups.push(() => ctl.kill('SIGKILL'));
    const base = ['--url', ctl.url, '--data-dir', ctlDir];
    for (const [i, site] of ['north', 'north', 'north', 'south'].entries()) {
      expect(
        (await cli('device', 'add', `gw-${i}`, '--tag', `site=${site}`, '--hardware', 'rpi4', ...base)).status,
      ).toBe(0);
    }

    // releases: the signature is checked on the way in; an artifact must match the manifest
    const archive = await appArchive(dir, '1.0.0', { 'app.txt': 'v1' });
    const manifest = filesRelease(key, '1.0.0', archive);
    const artifact = join(dir, 'app.tar.gz');
    writeFileSync(artifact, readFileSync(archive));
    const tampered = join(dir, 'tampered.json');
    writeFileSync(tampered, JSON.stringify({ ...manifest, notes: 'changed after signing' }));
    const refused = await cli('release', 'add', tampered, ...base);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/E_MANIFEST_SIGNATURE/);
    const other = signingKey();
    const untrusted = join(dir, 'untrusted.json');
    writeFileSync(untrusted, JSON.stringify(filesRelease(other, '1.0.0', archive)));
    expect((await cli('release', 'add', untrusted, ...base)).stderr).toMatch(/E_MANIFEST_UNTRUSTED_KEY.*not trusted/);
    const wrongBytes = join(dir, 'wrong', 'app.tar.gz');
    mkdirSync(join(dir, 'wrong'));
    writeFileSync(wrongBytes, Buffer.concat([readFileSync(archive), Buffer.from('x')]));
    const good = join(dir, 'manifest.json');
    writeFileSync(good, JSON.stringify(manifest));
    expect((await cli('release', 'add', good, '--artifact', wrongBytes, ...base)).stderr).toMatch(/E_ARTIFACT_SIZE/);
    const added = await cli('release', 'add', good, '--artifact', artifact, ...base);
    expect(added.status, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/release gateway-app@1\.0\.0 registered; signature verified; uploaded app\.tar\.gz/);
    expect((await cli('release', 'add', good, ...base)).stdout).toMatch(/already registered \(unchanged\)/);

    // artifacts are served with Range requests to devices (their own credentials) and operators
    const dev = JSON.parse((await cli('device', 'add', 'gw-dl', '--json', ...base)).stdout) as { token: string };
    const artifactUrl = `${ctl.url}/api/releases/gateway-app/1.0.0/artifacts/app.tar.gz`;
    const basic = `Basic ${Buffer.from(`gw-dl:${dev.token}`).toString('base64')}`;
    const part = await fetch(artifactUrl, { headers: { authorization: basic, range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${manifest.artifacts[0]!.size}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(readFileSync(archive).subarray(10, 20));
    expect(part.headers.get('x-checksum-sha256')).toBe(manifest.artifacts[0]!.sha256);
    const wrong = await fetch(artifactUrl, {
      headers: { authorization: `Basic ${Buffer.from('gw-dl:nope').toString('base64')}` },
    });
    expect(wrong.status).toBe(401);
    expect((await fetch(artifactUrl, { headers: { authorization: basic, range: 'bytes=999999-' } })).status).toBe(416);

    // bad plans: the error names the place; nothing is created
    for (const [what, yaml, message] of BAD_PLANS) {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, yaml);
      for (const cmd of ['plan', 'apply']) {
        const r = await cli('rollout', cmd, file, ...base);
        expect(r.status, `${what}: ${r.stdout}`).toBe(78); // EX_CONFIG: the input is wrong
        expect(r.stderr, what).toMatch(message);
      }
      const viaApi = await api(ctl.url, ctl.adminToken, 'POST', '/api/rollouts', { yaml, source: 'bad.yaml' });
      expect(viaApi.status, what).toBe(400);
    }
    const unknownRelease = join(dir, 'unknown.yaml');
    writeFileSync(unknownRelease, GOOD_PLAN.replace('1.0.0', '9.9.9'));
    expect((await cli('rollout', 'apply', unknownRelease, ...base)).stderr).toMatch(
      /E_RELEASE_UNKNOWN.*9\.9\.9 is not registered/,
    );
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/rollouts')).body.rollouts).toEqual([]);

    // plan, then apply: the canary is queued for the offline device and stays queued
    const planFile = join(dir, 'plan.yaml');
    writeFileSync(planFile, GOOD_PLAN);
    const preview = await cli('rollout', 'plan', planFile, ...base);
    expect(preview.status, preview.stderr).toBe(0);
    expect(preview.stdout).toMatch(/plan app-one: gateway-app@1\.0\.0 to 3 devices \(nothing is started\)/);
    expect(preview.stdout).toMatch(/wave 1 canary: 1 devices \(rpi4 1\), at once/);
    expect(preview.stdout).toMatch(/wave 2 rest: 2 devices .*after approval/);
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/rollouts')).body.rollouts).toEqual([]);
    const applied = await cli('rollout', 'apply', planFile, ...base);
    expect(applied.status, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/rollout app-one-1 started/);
    expect((await cli('rollout', 'apply', planFile, ...base)).stderr).toMatch(/E_ROLLOUT_EXISTS/);
    const status = async () => (await api(ctl.url, ctl.adminToken, 'GET', '/api/rollouts/app-one-1')).body;
    expect((await status()).waves[0].counts).toEqual({ QUEUED: 1 });

    expect((await cli('rollout', 'pause', 'app-one-1', ...base)).stdout).toMatch(/PAUSED/);
    expect((await cli('rollout', 'pause', 'app-one-1', ...base)).stderr).toMatch(
      /E_ROLLOUT_STATE.*cannot pause a rollout that is paused/,
    );
    expect((await cli('rollout', 'resume', 'app-one-1', ...base)).stdout).toMatch(/RUNNING \(wave 1 of 2\)/);
    expect((await cli('rollout', 'approve', 'app-one-1', '--wave', '2', ...base)).status).toBe(0);
    expect((await status()).waves[1].approved).toBe(true);
    const shown = await cli('rollout', 'status', 'app-one-1', ...base);
    expect(shown.stdout).toMatch(/1 canary\s+\[~+ *\] running\s+1 devices\s+queued 1/);
    expect(shown.stdout).toMatch(/2 rest .*\n.*approved/);
    const aborted = await cli('rollout', 'abort', 'app-one-1', ...base);
    expect(aborted.stdout).toMatch(/ABORTED/);
    expect((await status()).waves[0].counts).toEqual({ CANCELED: 1 });
    expect((await cli('rollout', 'watch', 'app-one-1', ...base)).status).toBe(1); // an aborted rollout
    expect((await cli('rollout', 'status', ...base)).stdout).toMatch(/app-one-1\s+gateway-app@1\.0\.0\s+aborted/);

    const events = (await cli('rollout', 'events', 'app-one-1', '--json', ...base)).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).kind);
    expect(events).toEqual(
      expect.arrayContaining([
        'rollout.started',
        'wave.started',
        'execution.changed',
        'rollout.paused',
        'rollout.resumed',
        'rollout.approved',
        'rollout.aborted',
      ]),
    );
    const audit = (await cli('audit', '--json', ...base)).stdout;
    for (const action of [
      'release.add',
      'rollout.apply',
      'rollout.pause',
      'rollout.resume',
      'rollout.approve',
      'rollout.abort',
    ]) {
      expect(audit).toContain(action);
    }
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const check = () =>
        hooks.some((h) => h.kind === 'rollout.aborted')
          ? resolve()
          : Date.now() - t0 > 10_000
            ? reject(new Error(`webhooks: ${JSON.stringify(hooks.map((h) => h.kind))}`))
            : setTimeout(check, 50);
      check();
    });
    expect(hooks.map((h) => h.kind)).toEqual(
      expect.arrayContaining(['rollout.started', 'rollout.paused', 'rollout.aborted']),
    );
  }, 120_000);
});

describe('release keys and signing (offline)', () => {
  it('makes a key pair and signs a manifest body that devices then verify', async () => {
    const dir = tmp('release-sign');
    const prefix = join(dir, 'rel');
    const keygen = await cli('release', 'keygen', '--out', prefix);
    expect(keygen.status, keygen.stderr).toBe(0);
    expect((await cli('release', 'keygen', '--out', prefix)).stderr).toMatch(/exists: not overwritten/);
    const body = new URL('../firmware-manifests/examples/gateway-app-1.2.0.json', import.meta.url).pathname;
    const out = join(dir, 'signed.json');
    const sign = await cli('release', 'sign', body, '--key', `${prefix}.key`, '--out', out);
    expect(sign.status, sign.stderr).toBe(0);
    const { trustedKeyFromPem, verifyManifest } = await import('@fleetwave/shared');
    const m = verifyManifest(JSON.parse(readFileSync(out, 'utf8')), {
      trusted: [trustedKeyFromPem(readFileSync(`${prefix}.pem`, 'utf8'))],
      now: Date.parse('2026-06-01T00:00:00Z'),
    });
    expect(m).toMatchObject({ name: 'gateway-app', version: '1.2.0' });
    const bad = await cli('release', 'sign', join(dir, 'missing.json'), '--key', `${prefix}.key`, '--out', out);
    expect(bad.stderr).toMatch(/cannot read .*missing\.json/);
  });
});

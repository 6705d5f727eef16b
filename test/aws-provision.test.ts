import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAwsIotEndpoint } from './aws-iot-endpoint.js';
import { api, CONTROLLER_CLI, cleanupAfterEach, freePort, spawnController, tmp } from './helpers.js';

const cleanups = cleanupAfterEach();

function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CONTROLLER_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('fleetwave aws provision (against a local endpoint speaking the AWS IoT API)', () => {
  it('creates the thing group, a least-privilege policy, things, certificates and agent configs, idempotently', async () => {
    const aws = await startAwsIotEndpoint();
    cleanups.push(() => aws.close());
    const dir = tmp('aws');
    const ctl = await spawnController(join(dir, 'ctl'), ['--mqtt-port', String(await freePort()), '--http-port', '0']);
    cleanups.push(() => ctl.kill('SIGKILL'));
    for (const [id, hw] of [
      ['gw-a', 'rpi4'],
      ['gw-b', 'rpi3'],
    ]) {
      expect(
        (await api(ctl.url, ctl.adminToken, 'POST', '/api/devices', { id, hardware: hw, tags: { site: 'north pier' } }))
          .status,
      ).toBe(201);
    }
    // credentials from the standard chain: here, the environment
    const env = {
      PATH: process.env.PATH,
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret-example',
      AWS_REGION: 'eu-central-1',
    };
    const out = join(dir, 'out');
    const args = [
      'aws',
      'provision',
      '--fleet',
      'north',
      '--out',
      out,
      '--endpoint-url',
      aws.url,
      '--url',
      ctl.url,
      '--token',
      ctl.adminToken,
    ];
    const first = await cli(args, env);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(
      /a1b2c3d4e5f6g7-ats\.iot\.eu-central-1\.amazonaws\.com: 8 created, 0 updated, 0 unchanged, 0 problems/,
    );
    // every request signed (SigV4), in this order
    expect(aws.requests.every((r) => r.signed)).toBe(true);
    expect(aws.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /thing-groups/north',
      'POST /thing-groups/north',
      'GET /policies/fleetwave-north-device',
      'POST /policies/fleetwave-north-device',
      'GET /endpoint',
      ...['gw-a', 'gw-b'].flatMap((id) => [
        `GET /things/${id}`,
        `POST /things/${id}`,
        `GET /things/${id}/principals`,
        'POST /keys-and-certificate',
        'PUT /target-policies/fleetwave-north-device',
        `PUT /things/${id}/principals`,
        `GET /things/${id}/thing-groups`,
        'PUT /thing-groups/addThingToThingGroup',
      ]),
    ]);
    expect(aws.requests.find((r) => r.path === '/things/gw-b' && r.method === 'POST')?.body).toEqual({
      attributePayload: { attributes: { site: 'north_pier', hardware: 'rpi3' } },
    });
    expect(aws.requests.find((r) => r.path === '/keys-and-certificate')?.query).toEqual({ setAsActive: 'true' });
    // the policy: a device only as its own thing, only its own topics and jobs topics
    const policy = JSON.parse(aws.state.policies.get('fleetwave-north-device')!.policyDocument);
    const resources = policy.Statement.flatMap((s: { Resource: string | string[] }) => [s.Resource].flat());
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT policy variable, not a template
    expect(resources.every((r: string) => r.includes('${iot:Connection.Thing.ThingName}'))).toBe(true);
    expect(policy.Statement[0]).toMatchObject({
      Action: 'iot:Connect',
      Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
    });
    expect(aws.state.membership.get('gw-a')).toEqual(['north']);
    // keys in files readable by the owner only, never printed
    const key = join(out, 'gw-a', 'private.pem.key');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(key, 'utf8')).toMatch(/SECRET-KEY-1/);
    expect(first.stdout + first.stderr).not.toMatch(/SECRET-KEY|PRIVATE KEY/);
    const config = readFileSync(join(out, 'gw-a', 'agent.yaml'), 'utf8');
    expect(config).toMatch(/url: mqtts:\/\/a1b2c3d4e5f6g7-ats\.iot\.eu-central-1\.amazonaws\.com:8883/);
    expect(config).toMatch(/jobsRoot: "\$aws\/things"/);

    // again: nothing that is right is changed (reads only), nothing printed twice
    const before = aws.requests.length;
    const second = await cli(args, env);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/0 created, 0 updated, 8 unchanged, 0 problems/);
    expect(aws.requests.slice(before).every((r) => r.method === 'GET')).toBe(true);

    // registry → AWS: a device's tags and hardware change in Fleetwave; provisioning makes its thing's attributes so
    const base = ['--url', ctl.url, '--token', ctl.adminToken];
    const set = await cli(['device', 'set', 'gw-b', '--tag', 'floor=2', '--hardware', 'rpi4', ...base], env);
    expect(set.status, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/device gw-b: tags and hardware changed/);
    expect((await cli(['device', 'set', 'gw-b', ...base], env)).status).toBe(78);
    const mark = aws.requests.length;
    const fourth = await cli(args, env);
    expect(fourth.stdout).toMatch(/0 created, 1 updated, 7 unchanged, 0 problems/);
    expect(aws.requests.slice(mark).filter((r) => r.method !== 'GET')).toEqual([
      expect.objectContaining({
        method: 'PATCH',
        path: '/things/gw-b',
        body: { attributePayload: { attributes: { site: 'north_pier', floor: '2', hardware: 'rpi4' }, merge: false } },
      }),
    ]);
    const fifth = aws.requests.length;
    expect((await cli(args, env)).stdout).toMatch(/0 created, 0 updated, 8 unchanged/);
    expect(aws.requests.slice(fifth).every((r) => r.method === 'GET')).toBe(true);

    // a certificate on AWS whose key is not here any more: no second certificate, a clear problem
    const lost = join(dir, 'elsewhere');
    const third = await cli(
      [
        'aws',
        'provision',
        '--fleet',
        'north',
        '--out',
        lost,
        '--endpoint-url',
        aws.url,
        '--url',
        ctl.url,
        '--token',
        ctl.adminToken,
      ],
      env,
    );
    expect(third.status).toBe(1);
    expect(third.stdout).toMatch(
      /gw-a has a certificate on AWS but no key in .*: restore the key, or detach and revoke/,
    );
    expect(aws.requests.filter((r) => r.path === '/keys-and-certificate')).toHaveLength(2);
    // AWS → registry: a thing made on AWS directly shows up in the registry with its attributes, and a thing whose
    // attributes were changed on AWS changes its device (gw-b's "north pier", north_pier on AWS, is left as it is)
    aws.addThing('gw-made-on-aws', 'north', { hardware: 'rpi5', site: 'south' });
    aws.state.things.get('gw-a')!.attributes = { hardware: 'rpi4', site: 'harbour', zone: 'b' };
    const synced = await cli(
      ['aws', 'sync', '--fleet', 'north', '--endpoint-url', aws.url, '--url', ctl.url, '--token', ctl.adminToken],
      env,
    );
    expect(synced.status, synced.stderr).toBe(0);
    expect(synced.stdout).toMatch(
      /3 things in north on AWS IoT Core: 1 registered \(gw-made-on-aws\), 1 updated from their attributes \(gw-a\), 1 unchanged/,
    );
    const dev = await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-made-on-aws');
    expect(dev.body.device).toMatchObject({ hardware: 'rpi5', tags: { site: 'south' } });
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-a')).body.device).toMatchObject({
      hardware: 'rpi4',
      tags: { site: 'harbour', zone: 'b' },
    });
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-b')).body.device.tags).toEqual({
      site: 'north pier',
      floor: '2',
    });
    // both ways agree now: neither command changes anything
    expect(
      (
        await cli(
          ['aws', 'sync', '--fleet', 'north', '--endpoint-url', aws.url, '--url', ctl.url, '--token', ctl.adminToken],
          env,
        )
      ).stdout,
    ).toMatch(/0 registered \(none\), 0 updated from their attributes \(none\), 3 unchanged/);
    // a device revoked in the registry is left alone by sync, said so, and does not stop it
    await api(ctl.url, ctl.adminToken, 'POST', '/api/devices/gw-made-on-aws/revoke');
    aws.state.things.get('gw-made-on-aws')!.attributes = { hardware: 'rpi5', site: 'elsewhere' };
    const afterRevoke = await cli(
      ['aws', 'sync', '--fleet', 'north', '--endpoint-url', aws.url, '--url', ctl.url, '--token', ctl.adminToken],
      env,
    );
    expect(afterRevoke.status, afterRevoke.stderr).toBe(0);
    expect(afterRevoke.stdout).toMatch(/2 unchanged, 1 revoked in the registry and left alone \(gw-made-on-aws\)/);
    // a thing whose attribute name is no tag name: reported with what to do, the other things still synced, exit 1
    aws.addThing('gw-odd', 'north', { 'team:lead': 'ana' });
    aws.addThing('gw-fine', 'north', { site: 'east' });
    const odd = await cli(
      ['aws', 'sync', '--fleet', 'north', '--endpoint-url', aws.url, '--url', ctl.url, '--token', ctl.adminToken],
      env,
    );
    expect(odd.status).toBe(1);
    expect(odd.stdout).toMatch(/1 registered \(gw-fine\)/);
    expect(odd.stdout).toMatch(
      /problem: gw-odd: 400 E_SCHEMA: .*tags\.team:lead.* change the thing's attributes on AWS/,
    );
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-odd')).status).toBe(404);
    // a tag taken off again
    expect((await cli(['device', 'set', 'gw-b', '--untag', 'floor', ...base], env)).stdout).toMatch(/tags changed/);
    expect((await api(ctl.url, ctl.adminToken, 'GET', '/api/devices/gw-b')).body.device.tags).toEqual({
      site: 'north pier',
    });
    // no region: said plainly
    const { AWS_REGION: _r, ...noRegion } = env;
    expect((await cli(args, noRegion)).stderr).toMatch(/no AWS region: pass --region or set AWS_REGION/);
  }, 60_000);
});

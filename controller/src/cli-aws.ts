import { IoTClient } from '@aws-sdk/client-iot';
import { FleetwaveError } from '@fleetwave/shared';
import { type ProvisionDevice, provisionFleet, sameAttributes, thingAttributes } from './aws/provision.js';
import { type RegistryDevice, thingsOfFleet } from './aws/sync.js';
import { type ClientOptions, call } from './cli-client.js';

export interface AwsFlags {
  fleet?: string | undefined;
  region?: string | undefined;
  'endpoint-url'?: string | undefined;
  out?: string | undefined;
  'ca-file'?: string | undefined;
  json?: boolean | undefined;
}

/**
 * `fleetwave aws provision`: the controller's devices onto AWS IoT Core. Credentials come from the standard AWS chain
 * (environment, shared config and credentials files, SSO, instance or container roles); region from --region or
 * AWS_REGION; --endpoint-url points the SDK elsewhere (a local endpoint in tests).
 */
export async function runAwsCommand(sub: string | undefined, v: AwsFlags, client: ClientOptions): Promise<number> {
  if (sub !== 'provision' && sub !== 'sync') {
    throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave aws provision|sync --fleet <name> …');
  }
  const region = v.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new FleetwaveError('E_CONFIG_INVALID', 'no AWS region: pass --region or set AWS_REGION');
  if (!v.fleet) throw new FleetwaveError('E_CONFIG_INVALID', `usage: fleetwave aws ${sub} --fleet <name>`);
  if (sub === 'sync') return sync(v.fleet, region, v, client);
  if (!v.out) throw new FleetwaveError('E_CONFIG_INVALID', 'usage: fleetwave aws provision --fleet <name> --out <dir>');
  const { devices } = (await call(client, 'GET', '/api/devices')) as {
    devices: (ProvisionDevice & { revokedAt: number | null })[];
  };
  const iot = new IoTClient({ region, ...(v['endpoint-url'] && { endpoint: v['endpoint-url'] }) });
  const r = await provisionFleet({
    client: iot,
    fleet: v.fleet,
    devices: devices.filter((d) => d.revokedAt === null),
    outDir: v.out,
    ...(v['ca-file'] && { caFile: v['ca-file'] }),
    say: v.json ? undefined : (line) => process.stdout.write(`${line}\n`),
  });
  if (v.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else {
    process.stdout.write(
      `AWS IoT Core data endpoint ${r.endpoint}: ${r.created.length} created, ${r.updated.length} updated, ${r.unchanged.length} unchanged, ${r.problems.length} problems; agent configs in ${v.out}/<device>/agent.yaml (updates.jobsRoot: $aws/things)\n`,
    );
  }
  iot.destroy();
  return r.problems.length ? 1 : 0;
}

/**
 * AWS → registry: things of the fleet's group that the registry lacks are registered, and registered devices whose
 * thing attributes differ take them as their hardware and tags (a tag already equal to the attribute except for the
 * characters AWS does not allow is left as it is).
 */
async function sync(fleet: string, region: string, v: AwsFlags, client: ClientOptions): Promise<number> {
  const iot = new IoTClient({ region, ...(v['endpoint-url'] && { endpoint: v['endpoint-url'] }) });
  const things = await thingsOfFleet(iot, fleet);
  iot.destroy();
  const { devices } = (await call(client, 'GET', '/api/devices')) as {
    devices: (RegistryDevice & { revokedAt: number | null })[];
  };
  const known = new Map(devices.map((d) => [d.id, d]));
  const added: string[] = [];
  const updated: string[] = [];
  const revoked: string[] = [];
  const problems: string[] = [];
  for (const t of things) {
    const d = known.get(t.id);
    // a revoked device stays as it was revoked (its thing on AWS is the operator's to delete)
    if (d?.revokedAt != null) {
      revoked.push(t.id);
      continue;
    }
    if (d && sameAttributes(thingAttributes(d), thingAttributes(t))) continue;
    // one thing the registry refuses (an attribute name that is no tag name, say) is reported; the others go on
    try {
      if (!d) {
        // the device authenticates to AWS with its certificate; the registry's own token is not printed
        await call(client, 'POST', '/api/devices', {
          id: t.id,
          tags: t.tags,
          ...(t.hardware && { hardware: t.hardware }),
        });
        added.push(t.id);
      } else {
        await call(client, 'PATCH', `/api/devices/${encodeURIComponent(t.id)}`, { tags: t.tags, hardware: t.hardware });
        updated.push(t.id);
      }
    } catch (err) {
      problems.push(
        `${t.id}: ${(err as Error).message} — change the thing's attributes on AWS (registry tag names are ` +
          '[A-Za-z0-9_.-]{1,64}, hardware [A-Za-z0-9._-]{1,64}) and run sync again',
      );
    }
  }
  const unchanged = things.length - added.length - updated.length - revoked.length - problems.length;
  const r = { fleet, things: things.length, added, updated, revoked, unchanged, problems };
  process.stdout.write(
    v.json
      ? `${JSON.stringify(r, null, 2)}\n`
      : `${things.length} things in ${fleet} on AWS IoT Core: ${added.length} registered (${added.join(', ') || 'none'}), ` +
          `${updated.length} updated from their attributes (${updated.join(', ') || 'none'}), ${unchanged} unchanged` +
          `${revoked.length ? `, ${revoked.length} revoked in the registry and left alone (${revoked.join(', ')})` : ''}\n` +
          problems.map((p) => `problem: ${p}\n`).join(''),
  );
  return problems.length ? 1 : 0;
}

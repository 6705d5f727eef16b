import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DescribeEndpointCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  type IoTClient,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { FleetwaveError } from '@fleetwave/shared';

export interface ProvisionDevice {
  id: string;
  hardware: string | null;
  tags: Record<string, string>;
}

export interface ProvisionOptions {
  client: IoTClient;
  /** The fleet: its thing group and policy are named after it. */
  fleet: string;
  devices: readonly ProvisionDevice[];
  /** Per device `<out>/<id>/{certificate.pem.crt, private.pem.key, agent.yaml}`. */
  outDir: string;
  /** The topic root the devices use for telemetry (`fleetwave`). */
  root?: string;
  /** Where the agent finds Amazon's root CA on the device. */
  caFile?: string;
  say?: (line: string) => void;
}

export interface ProvisionResult {
  endpoint: string;
  created: string[];
  /** Things whose attributes were made the registry's hardware and tags again. */
  updated: string[];
  unchanged: string[];
  problems: string[];
}

/**
 * The least-privilege policy of a fleet's devices: a device connects only as its own thing (with its certificate
 * attached) and publishes, subscribes and receives only under its own telemetry topics and its own jobs topics.
 */
export function devicePolicy(root = 'fleetwave'): string {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT policy variable, not a template
  const thing = '${iot:Connection.Thing.ThingName}';
  const own = [`${root}/devices/${thing}/*`, `$aws/things/${thing}/jobs/*`];
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: `arn:aws:iot:*:*:client/${thing}`,
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      { Effect: 'Allow', Action: 'iot:Publish', Resource: own.map((t) => `arn:aws:iot:*:*:topic/${t}`) },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: [`${root}/devices/${thing}/config/desired`, `$aws/things/${thing}/jobs/*`].map(
          (t) => `arn:aws:iot:*:*:topicfilter/${t}`,
        ),
      },
      {
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: [`${root}/devices/${thing}/config/desired`, `$aws/things/${thing}/jobs/*`].map(
          (t) => `arn:aws:iot:*:*:topic/${t}`,
        ),
      },
    ],
  });
}

const notFound = (err: unknown) =>
  err instanceof ResourceNotFoundException || (err as { name?: string }).name === 'ResourceNotFoundException';

/** What fn answers, or undefined when AWS says the resource does not exist. */
async function found<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (notFound(err)) return undefined;
    throw err;
  }
}

async function exists(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (err) {
    if (notFound(err)) return false;
    throw err;
  }
}

/** Thing attributes allow [a-zA-Z0-9_.,@/:#-]: other characters of tags are replaced. */
export const attribute = (v: string) => v.replace(/[^a-zA-Z0-9_.,@/:#-]/g, '_').slice(0, 800);

/** A registry device's hardware and tags as thing attributes. */
export function thingAttributes(d: { hardware: string | null; tags: Record<string, string> }): Record<string, string> {
  return Object.fromEntries(
    Object.entries({ ...d.tags, ...(d.hardware && { hardware: d.hardware }) }).map(([k, v]) => [k, attribute(v)]),
  );
}

export const sameAttributes = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

export function agentConfigForAws(o: {
  id: string;
  endpoint: string;
  dir: string;
  root: string;
  caFile: string;
}): string {
  return `# written by fleetwave aws provision: the agent on AWS IoT Core
device: { id: ${o.id} }
uplink:
  url: mqtts://${o.endpoint}:8883
  root: ${o.root}
  caFile: ${o.caFile}
  certFile: ${join(o.dir, 'certificate.pem.crt')}
  keyFile: ${join(o.dir, 'private.pem.key')}
updates:
  enabled: true
  jobsRoot: "$aws/things"
`;
}

/**
 * Creates what is missing of a fleet on AWS IoT Core — its thing group, its device policy, and per device the thing
 * (with its hardware and tags as attributes), a key pair and certificate attached to the thing and the policy, the
 * group membership — and writes each device's certificate, private key (mode 0600) and agent config. Idempotent:
 * what exists and is right is left alone. Private keys are written to files only, never printed or logged.
 */
export async function provisionFleet(o: ProvisionOptions): Promise<ProvisionResult> {
  const c = o.client;
  const say = o.say ?? (() => {});
  const root = o.root ?? 'fleetwave';
  const result: ProvisionResult = { endpoint: '', created: [], updated: [], unchanged: [], problems: [] };
  const note = (what: string, created: boolean | 'updated') => {
    const kind = created === 'updated' ? 'updated' : created ? 'created' : 'unchanged';
    result[kind].push(what);
    say(`${kind}: ${what}`);
  };
  if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(o.fleet))
    throw new FleetwaveError('E_CONFIG_INVALID', `fleet name ${o.fleet} is not a valid thing group name`);

  if (await exists(() => c.send(new DescribeThingGroupCommand({ thingGroupName: o.fleet }))))
    note(`thing group ${o.fleet}`, false);
  else {
    await c.send(
      new CreateThingGroupCommand({
        thingGroupName: o.fleet,
        thingGroupProperties: { thingGroupDescription: 'Fleetwave fleet' },
      }),
    );
    note(`thing group ${o.fleet}`, true);
  }

  const policyName = `fleetwave-${o.fleet}-device`;
  const document = devicePolicy(root);
  let current: string | undefined;
  try {
    current = (await c.send(new GetPolicyCommand({ policyName }))).policyDocument;
  } catch (err) {
    if (!notFound(err)) throw err;
  }
  if (current === undefined) {
    await c.send(new CreatePolicyCommand({ policyName, policyDocument: document }));
    note(`policy ${policyName}`, true);
  } else if (JSON.stringify(JSON.parse(current)) !== document) {
    await c.send(new CreatePolicyVersionCommand({ policyName, policyDocument: document, setAsDefault: true }));
    note(`policy ${policyName} (new default version)`, true);
  } else note(`policy ${policyName}`, false);

  const endpoint = (await c.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }))).endpointAddress;
  if (!endpoint) throw new FleetwaveError('E_NOT_FOUND', 'AWS IoT returned no data endpoint');
  result.endpoint = endpoint;

  for (const d of o.devices) {
    const attributes = thingAttributes(d);
    const thing = await found(() => c.send(new DescribeThingCommand({ thingName: d.id })));
    if (thing && sameAttributes(thing.attributes ?? {}, attributes)) note(`thing ${d.id}`, false);
    else if (thing) {
      // the registry is the truth here (fleetwave aws sync takes changes made on AWS into it first)
      await c.send(new UpdateThingCommand({ thingName: d.id, attributePayload: { attributes, merge: false } }));
      note(`attributes of thing ${d.id}`, 'updated');
    } else {
      await c.send(new CreateThingCommand({ thingName: d.id, attributePayload: { attributes } }));
      note(`thing ${d.id}`, true);
    }
    const dir = join(o.outDir, d.id);
    const keyFile = join(dir, 'private.pem.key');
    const principals = (await c.send(new ListThingPrincipalsCommand({ thingName: d.id }))).principals ?? [];
    if (principals.length === 0) {
      const cert = await c.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
      if (!cert.certificateArn || !cert.certificatePem || !cert.keyPair?.PrivateKey) {
        throw new FleetwaveError('E_NOT_FOUND', `AWS IoT returned no certificate for ${d.id}`);
      }
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(keyFile, cert.keyPair.PrivateKey, { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      writeFileSync(join(dir, 'certificate.pem.crt'), cert.certificatePem);
      await c.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
      await c.send(new AttachThingPrincipalCommand({ thingName: d.id, principal: cert.certificateArn }));
      note(`certificate ${cert.certificateId} for ${d.id} (key in ${keyFile})`, true);
    } else if (!existsSync(keyFile)) {
      // AWS never returns a private key twice: a second certificate would be a change; say what to do instead
      result.problems.push(
        `${d.id} has a certificate on AWS but no key in ${keyFile}: restore the key, or detach and revoke the certificate and run again`,
      );
      say(`problem: ${result.problems.at(-1)}`);
    } else note(`certificate of ${d.id}`, false);
    const groups = (await c.send(new ListThingGroupsForThingCommand({ thingName: d.id }))).thingGroups ?? [];
    if (groups.some((g) => g.groupName === o.fleet)) note(`${d.id} in ${o.fleet}`, false);
    else {
      await c.send(new AddThingToThingGroupCommand({ thingGroupName: o.fleet, thingName: d.id }));
      note(`${d.id} in ${o.fleet}`, true);
    }
    if (existsSync(dir)) {
      writeFileSync(
        join(dir, 'agent.yaml'),
        agentConfigForAws({ id: d.id, endpoint, dir, root, caFile: o.caFile ?? '/etc/fleetwave/AmazonRootCA1.pem' }),
      );
    }
  }
  return result;
}

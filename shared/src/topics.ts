import { FleetwaveError } from './errors.js';

/**
 * Topic builders and parsers. Device topics: `{root}/devices/{device}/{kind}`; clean telemetry for backends:
 * `{root}/clean/{device}/telemetry`; jobs: `{jobsRoot}/{thing}/jobs/…` exactly as JOBS-PROTOCOL.md lists them.
 */
export const DEVICE_TOPIC_KINDS = [
  'telemetry',
  'health',
  'presence',
  'backlog',
  'config/desired',
  'config/reported',
] as const;
export type DeviceTopicKind = (typeof DEVICE_TOPIC_KINDS)[number];

export const JOB_OPERATIONS = ['get', 'start-next', 'describe', 'update'] as const;
export type JobOperation = (typeof JOB_OPERATIONS)[number];
export type JobReply = 'request' | 'accepted' | 'rejected';

export type ParsedTopic =
  | { family: 'device'; device: string; kind: DeviceTopicKind }
  | { family: 'clean'; device: string }
  | { family: 'jobs'; thing: string; op: JobOperation; jobId?: string; reply: JobReply }
  | { family: 'jobs-notify'; thing: string; which: 'notify' | 'notify-next' };

const DEVICE_RE = /^[a-zA-Z0-9:_-]{1,128}$/;
const JOB_ID_RE = /^[a-zA-Z0-9_-]{1,64}$/;

function checkRoot(root: string): string[] {
  const segs = root.split('/');
  for (const s of segs) {
    if (s === '' || s.includes('+') || s.includes('#')) {
      throw new FleetwaveError('E_TOPIC_SEGMENT', `topic root "${root}" has an empty or wildcard segment`);
    }
  }
  return segs;
}

function checkDevice(device: string): string {
  if (!DEVICE_RE.test(device)) throw new FleetwaveError('E_TOPIC_DEVICE', `invalid device id "${device}"`);
  return device;
}

export function deviceTopic(root: string, device: string, kind: DeviceTopicKind): string {
  checkRoot(root);
  if (!DEVICE_TOPIC_KINDS.includes(kind)) throw new FleetwaveError('E_TOPIC_KIND', `unknown topic kind "${kind}"`);
  return `${root}/devices/${checkDevice(device)}/${kind}`;
}

export function cleanTelemetryTopic(root: string, device: string): string {
  checkRoot(root);
  return `${root}/clean/${checkDevice(device)}/telemetry`;
}

/** Subscription filters, for brokers and ACLs. */
export const topicFilters = {
  allDevices: (root: string, kind: DeviceTopicKind) => `${checkRoot(root).join('/')}/devices/+/${kind}`,
  device: (root: string, device: string) => `${checkRoot(root).join('/')}/devices/${checkDevice(device)}/#`,
  clean: (root: string) => `${checkRoot(root).join('/')}/clean/#`,
  jobs: (jobsRoot: string, thing: string) => `${checkRoot(jobsRoot).join('/')}/${checkDevice(thing)}/jobs/#`,
};

export function jobTopic(
  jobsRoot: string,
  thing: string,
  op: JobOperation,
  reply: JobReply = 'request',
  jobId?: string,
): string {
  checkRoot(jobsRoot);
  checkDevice(thing);
  const suffix = reply === 'request' ? '' : `/${reply}`;
  switch (op) {
    case 'get':
      return `${jobsRoot}/${thing}/jobs/get${suffix}`;
    case 'start-next':
      return `${jobsRoot}/${thing}/jobs/start-next${suffix}`;
    case 'describe':
    case 'update': {
      if (jobId === undefined || !(JOB_ID_RE.test(jobId) || (op === 'describe' && jobId === '$next'))) {
        throw new FleetwaveError('E_TOPIC_SEGMENT', `invalid jobId "${jobId}"`);
      }
      return `${jobsRoot}/${thing}/jobs/${jobId}/${op === 'describe' ? 'get' : 'update'}${suffix}`;
    }
    default:
      throw new FleetwaveError('E_TOPIC_KIND', `unknown job operation "${String(op)}"`);
  }
}

export function jobNotifyTopic(jobsRoot: string, thing: string, which: 'notify' | 'notify-next'): string {
  checkRoot(jobsRoot);
  return `${jobsRoot}/${checkDevice(thing)}/jobs/${which}`;
}

function splitUnder(root: string, topic: string): string[] {
  const rootSegs = checkRoot(root);
  const segs = topic.split('/');
  for (let i = 0; i < rootSegs.length; i++) {
    if (segs[i] !== rootSegs[i]) throw new FleetwaveError('E_TOPIC_ROOT', `topic "${topic}" is not under "${root}"`);
  }
  const rest = segs.slice(rootSegs.length);
  for (const s of rest) {
    if (s === '' || s.includes('+') || s.includes('#')) {
      throw new FleetwaveError('E_TOPIC_SEGMENT', `topic "${topic}" has an empty or wildcard segment`);
    }
  }
  return rest;
}

/** Parses a Fleetwave device or clean topic under `root`. */
export function parseTopic(root: string, topic: string): ParsedTopic {
  const rest = splitUnder(root, topic);
  const [family, device, ...kindSegs] = rest;
  if (family === 'devices' && device !== undefined) {
    checkDevice(device);
    const kind = kindSegs.join('/');
    if (!(DEVICE_TOPIC_KINDS as readonly string[]).includes(kind)) {
      throw new FleetwaveError('E_TOPIC_KIND', `unknown topic kind "${kind}" in "${topic}"`);
    }
    return { family: 'device', device, kind: kind as DeviceTopicKind };
  }
  if (family === 'clean' && device !== undefined && kindSegs.length === 1 && kindSegs[0] === 'telemetry') {
    return { family: 'clean', device: checkDevice(device) };
  }
  throw new FleetwaveError('E_TOPIC_KIND', `unknown topic "${topic}"`);
}

/** Parses a jobs topic under `jobsRoot` (`$aws/things` on AWS IoT Core). */
export function parseJobTopic(jobsRoot: string, topic: string): ParsedTopic {
  const rest = splitUnder(jobsRoot, topic);
  const [thing, jobs, a, b, c, ...extra] = rest;
  if (thing === undefined || jobs !== 'jobs' || a === undefined || extra.length > 0) {
    throw new FleetwaveError('E_TOPIC_KIND', `not a jobs topic: "${topic}"`);
  }
  checkDevice(thing);
  const reply = (s: string | undefined): JobReply | undefined =>
    s === undefined ? 'request' : s === 'accepted' || s === 'rejected' ? s : undefined;
  if ((a === 'notify' || a === 'notify-next') && b === undefined) return { family: 'jobs-notify', thing, which: a };
  if ((a === 'get' || a === 'start-next') && c === undefined) {
    const r = reply(b);
    if (r) return { family: 'jobs', thing, op: a, reply: r };
  }
  if ((b === 'get' || b === 'update') && (JOB_ID_RE.test(a) || (a === '$next' && b === 'get'))) {
    const r = reply(c);
    if (r) return { family: 'jobs', thing, op: b === 'get' ? 'describe' : 'update', jobId: a, reply: r };
  }
  throw new FleetwaveError('E_TOPIC_KIND', `unknown jobs topic "${topic}"`);
}

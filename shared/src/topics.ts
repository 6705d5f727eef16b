import { FleetwaveError } from './errors.js';

/**
 * Topic builders and parsers. Device topics: `{root}/devices/{device}/{kind}`; clean telemetry for backends:
 * `{root}/clean/{device}/telemetry`; jobs: `{jobsRoot}/{thing}/jobs/…` exactly as docs/JOBS-PROTOCOL.md lists them.
 */
export const DEVICE_TOPIC_KINDS = [
  'telemetry',
  'health',
  'presence',
  'backlog',
  'config/desired',
  'config/reported',
  'certificate/request',
  'certificate/issued',
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

export type JobsTopic = Extract<ParsedTopic, { family: 'jobs' | 'jobs-notify' }>;

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

/**
 * Every jobs request a device may publish, as the segments after `{jobsRoot}/{thing}/jobs/` (JOBS-PROTOCOL "Topics").
 * One table read by the topic builder and parser, the embedded broker's ACL and the generated Mosquitto ACL, so the
 * three cannot disagree. `{jobId}` is one segment matching JOB_ID_RE, or `$next` where AWS allows it: only
 * DescribeJobExecution (`$next/get`); UpdateJobExecution needs a real job id.
 */
export const JOB_REQUESTS: readonly { op: JobOperation; segments: readonly string[]; next?: true }[] = Object.freeze([
  { op: 'get', segments: ['get'] },
  { op: 'start-next', segments: ['start-next'] },
  { op: 'describe', segments: ['{jobId}', 'get'], next: true },
  { op: 'update', segments: ['{jobId}', 'update'] },
]);

/** `$next`: the next pending execution, in place of a job id (describe only). */
export const NEXT_JOB = '$next';

function jobIdFits(request: (typeof JOB_REQUESTS)[number], jobId: string | undefined): boolean {
  return jobId !== undefined && (JOB_ID_RE.test(jobId) || (request.next === true && jobId === NEXT_JOB));
}

/**
 * The request topic filters of one thing, with `+` for the job id: what a device may publish. `thing` is not checked
 * so that an ACL can pass a placeholder such as Mosquitto's `%u`.
 */
export function jobRequestFilters(jobsRoot: string, thing: string): string[] {
  checkRoot(jobsRoot);
  return JOB_REQUESTS.map(
    (r) => `${jobsRoot}/${thing}/jobs/${r.segments.map((s) => (s === '{jobId}' ? '+' : s)).join('/')}`,
  );
}

export function jobTopic(
  jobsRoot: string,
  thing: string,
  op: JobOperation,
  reply: JobReply = 'request',
  jobId?: string,
): string {
  checkRoot(jobsRoot);
  checkDevice(thing);
  const request = JOB_REQUESTS.find((r) => r.op === op);
  if (!request) throw new FleetwaveError('E_TOPIC_KIND', `unknown job operation "${String(op)}"`);
  const needsId = request.segments.includes('{jobId}');
  if (needsId && !jobIdFits(request, jobId)) throw new FleetwaveError('E_TOPIC_SEGMENT', `invalid jobId "${jobId}"`);
  const path = request.segments.map((s) => (s === '{jobId}' ? jobId : s)).join('/');
  return `${jobsRoot}/${thing}/jobs/${path}${reply === 'request' ? '' : `/${reply}`}`;
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

/** Parses a jobs topic under `jobsRoot` (`$aws/things` on AWS IoT Core), by the JOB_REQUESTS table. */
export function parseJobTopic(jobsRoot: string, topic: string): JobsTopic {
  const rest = splitUnder(jobsRoot, topic);
  const [thing, jobs, ...path] = rest;
  if (thing === undefined || jobs !== 'jobs' || path.length === 0) {
    throw new FleetwaveError('E_TOPIC_KIND', `not a jobs topic: "${topic}"`);
  }
  checkDevice(thing);
  if (path.length === 1 && (path[0] === 'notify' || path[0] === 'notify-next')) {
    return { family: 'jobs-notify', thing, which: path[0] };
  }
  for (const r of JOB_REQUESTS) {
    const n = r.segments.length;
    if (path.length !== n && path.length !== n + 1) continue;
    const last = path[n];
    const reply: JobReply | undefined =
      last === undefined ? 'request' : last === 'accepted' || last === 'rejected' ? last : undefined;
    if (!reply) continue;
    let jobId: string | undefined;
    const fits = r.segments.every((s, i) => {
      if (s !== '{jobId}') return path[i] === s;
      jobId = path[i];
      return jobIdFits(r, jobId);
    });
    if (fits) return { family: 'jobs', thing, op: r.op, reply, ...(jobId !== undefined && { jobId }) };
  }
  throw new FleetwaveError('E_TOPIC_KIND', `unknown jobs topic "${topic}"`);
}

import { parseJobTopic } from '@fleetwave/shared';

/**
 * Who may publish and subscribe to what (DESIGN invariant 8). Pure, so every forbidden combination is testable
 * without a broker; the embedded broker and the generated Mosquitto ACL both follow it.
 */
export type Principal = { kind: 'device'; id: string } | { kind: 'backend'; name: string } | { kind: 'controller' };

export interface TopicRoots {
  root: string;
  jobsRoot: string;
}

export const DEVICE_PUBLISHES = [
  'telemetry',
  'health',
  'presence',
  'backlog',
  'config/reported',
  'certificate/request',
];
/** What a device may subscribe to under its own topics. */
export const DEVICE_READS = ['config/desired', 'certificate/issued'];

/** Strips a shared-subscription prefix (`$share/group/…`, MQTT 5 and Mosquitto). */
export function unshare(filter: string): string {
  const m = /^\$share\/[^/+#]+\/(.+)$/.exec(filter);
  return m ? m[1]! : filter;
}

export function canPublish(p: Principal, topic: string, r: TopicRoots): boolean {
  if (p.kind === 'controller') return true;
  if (p.kind === 'backend') return false;
  const own = `${r.root}/devices/${p.id}/`;
  if (topic.startsWith(own)) return DEVICE_PUBLISHES.includes(topic.slice(own.length));
  if (!topic.startsWith(`${r.jobsRoot}/${p.id}/jobs/`)) return false;
  // the jobs requests of shared's JOB_REQUESTS table, the same the Mosquitto ACL is generated from
  try {
    const t = parseJobTopic(r.jobsRoot, topic);
    return t.family === 'jobs' && t.reply === 'request' && t.thing === p.id;
  } catch {
    return false;
  }
}

export function canSubscribe(p: Principal, filter: string, r: TopicRoots): boolean {
  if (p.kind === 'controller') return true;
  const f = unshare(filter);
  if (p.kind === 'backend') {
    const clean = `${r.root}/clean/`;
    if (f === `${clean}#`) return true;
    return f.startsWith(clean) && /^([A-Za-z0-9:_-]+|\+)\/telemetry$/.test(f.slice(clean.length));
  }
  // the device id is a literal prefix: no wildcard can reach another device's topics
  const own = `${r.root}/devices/${p.id}/`;
  if (f.startsWith(own)) return DEVICE_READS.includes(f.slice(own.length));
  return f.startsWith(`${r.jobsRoot}/${p.id}/jobs/`);
}

import { parseJobTopic, parseTopic } from '@fleetwave/shared';
import type { TelemetryIngest } from '../ingest/telemetry-ingest.js';

/**
 * A device message other than telemetry, from a broker the controller does not run: a jobs request goes to the jobs
 * service, a status message (health, presence, backlog, reported config, certificate request) to ingest; anything
 * else (an answer the controller itself sent, a topic not ours) is dropped.
 */
export function routeDeviceMessage(
  o: {
    root: string;
    jobsRoot?: string;
    onJobRequest?: (thing: string, topic: string, payload: Buffer) => void;
    ingest: Pick<TelemetryIngest, 'statusMessage'>;
  },
  topic: string,
  payload: Buffer,
): void {
  if (o.jobsRoot && o.onJobRequest && topic.startsWith(`${o.jobsRoot}/`)) {
    try {
      const t = parseJobTopic(o.jobsRoot, topic);
      if (t.family === 'jobs' && t.reply === 'request') o.onJobRequest(t.thing, topic, payload);
    } catch {
      // an answer or notification the controller itself sent, or not a jobs topic
    }
    return;
  }
  try {
    const t = parseTopic(o.root, topic);
    if (t.family === 'device') o.ingest.statusMessage(t.device, t.kind, payload);
  } catch {
    // not a device topic of ours: nothing to ingest
  }
}

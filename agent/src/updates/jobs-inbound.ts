import {
  DescribeAccepted,
  decodeMessage,
  GetPendingAccepted,
  isFleetwaveError,
  type JobExecution,
  JobId,
  JobsRejected,
  type JobsTopic,
  NotifyJobs,
  NotifyNext,
  parseJobTopic,
  StartNextAccepted,
  UpdateAccepted,
} from '@fleetwave/shared';

/** What the jobs service told this device, decoded with the shared schemas (DESIGN invariant 7). */
export type JobsInbound =
  | { kind: 'notify-next'; execution: JobExecution | undefined }
  | { kind: 'notify' }
  | { kind: 'start-next'; reply: 'accepted'; execution: JobExecution | undefined }
  | { kind: 'start-next'; reply: 'rejected'; rejection: JobsRejected }
  | { kind: 'update'; jobId: string; reply: 'accepted'; answer: UpdateAccepted }
  | { kind: 'update'; jobId: string; reply: 'rejected'; answer: JobsRejected }
  /** Answers the agent does not ask for (get, describe) and its own requests echoed back: valid, nothing to do. */
  | { kind: 'ignored' };

/**
 * A jobs message that did not pass: its topic or payload is malformed or names another thing. `jobId` is set only
 * when a start-next answer carried a job id that is itself valid, so the job can be REJECTED with the reason.
 */
export interface JobsRefusal {
  kind: 'refused';
  reason: string;
  jobId?: string;
}

/** Jobs answers are small; a job document is at most a manifest (the shared decoder's default limit, 256 KiB). */
const MAX_BYTES = 256 * 1024;

const reasonOf = (err: unknown) => (isFleetwaveError(err) ? `${err.code}: ${err.message}` : String(err)).slice(0, 900);

const opts = { maxBytes: MAX_BYTES };

/** The job id of a start-next answer that failed its schema, when that id alone is valid. */
function salvageJobId(payload: Buffer): string | undefined {
  if (payload.length > MAX_BYTES) return undefined;
  try {
    const v = JSON.parse(payload.toString('utf8')) as { execution?: { jobId?: unknown } } | null;
    const id = v?.execution?.jobId;
    return JobId.safeParse(id).success ? (id as string) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decodes one message on the device's jobs topics. Never throws: what does not pass is a refusal with a reason.
 * The topic is parsed with the shared grammar (a job id in a topic is checked before anything uses it), the thing
 * must be this device, and every execution must name this device.
 */
export function decodeJobsMessage(
  jobsRoot: string,
  device: string,
  topic: string,
  payload: Buffer,
): JobsInbound | JobsRefusal {
  let t: JobsTopic;
  try {
    t = parseJobTopic(jobsRoot, topic);
  } catch (err) {
    return { kind: 'refused', reason: `topic: ${reasonOf(err)}` };
  }
  if (t.thing !== device) return { kind: 'refused', reason: `topic of another thing: ${t.thing}` };
  const own = (e: JobExecution | undefined) => {
    if (e && e.thingName !== device) throw new Error(`the execution names another thing: ${e.thingName}`);
    return e;
  };
  try {
    if (t.family === 'jobs-notify') {
      if (t.which === 'notify') {
        decodeMessage(NotifyJobs, payload, 'notify', opts);
        return { kind: 'notify' };
      }
      return { kind: 'notify-next', execution: own(decodeMessage(NotifyNext, payload, 'notify-next', opts).execution) };
    }
    if (t.reply === 'request') return { kind: 'ignored' };
    if (t.op === 'start-next') {
      if (t.reply === 'rejected') {
        return {
          kind: 'start-next',
          reply: 'rejected',
          rejection: decodeMessage(JobsRejected, payload, 'start-next rejected', opts),
        };
      }
      let a: StartNextAccepted;
      try {
        a = decodeMessage(StartNextAccepted, payload, 'start-next accepted', opts);
      } catch (err) {
        const jobId = salvageJobId(payload);
        return { kind: 'refused', reason: reasonOf(err), ...(jobId && { jobId }) };
      }
      // an execution for another thing is not salvaged: this thing must not answer for it
      return { kind: 'start-next', reply: 'accepted', execution: own(a.execution) };
    }
    if (t.op === 'update') {
      const jobId = t.jobId!;
      return t.reply === 'accepted'
        ? {
            kind: 'update',
            jobId,
            reply: 'accepted',
            answer: decodeMessage(UpdateAccepted, payload, 'update accepted', opts),
          }
        : {
            kind: 'update',
            jobId,
            reply: 'rejected',
            answer: decodeMessage(JobsRejected, payload, 'update rejected', opts),
          };
    }
    decodeMessage(
      t.reply === 'rejected' ? JobsRejected : t.op === 'get' ? GetPendingAccepted : DescribeAccepted,
      payload,
      t.op,
      opts,
    );
    return { kind: 'ignored' };
  } catch (err) {
    return { kind: 'refused', reason: err instanceof Error && !isFleetwaveError(err) ? err.message : reasonOf(err) };
  }
}

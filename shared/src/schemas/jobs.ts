import { z } from 'zod';
import { ShortText } from './common.js';

/** The jobs protocol of docs/JOBS-PROTOCOL.md: the shape of the AWS IoT Jobs device MQTT API. */
export const JobStatus = z.enum([
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
]);
export type JobStatus = z.infer<typeof JobStatus>;
export const DeviceSettableStatus = z.enum(['IN_PROGRESS', 'FAILED', 'SUCCEEDED', 'REJECTED']);

export const JobId = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'jobId must match [a-zA-Z0-9_-]{1,64}');
export const ThingName = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'thing name must match [a-zA-Z0-9:_-]{1,128}');
export const ClientToken = z.string().min(1).max(64);
/** Epoch time. The API reference says milliseconds, some guide examples show seconds: both are read (see epochToMs). */
export const JobTime = z.number().min(0).max(8.64e15);
export const StatusDetails = z.record(z.string().min(1).max(128), z.string().max(1024));
export const JobDocument = z.record(z.string(), z.unknown());

/** Epoch numbers below 1e11 are taken as seconds (1e11 s is the year 5138; 1e11 ms is 1973). Written as ms. */
export function epochToMs(t: number): number {
  return t < 1e11 ? t * 1000 : t;
}

export const JobExecution = z.strictObject({
  jobId: JobId,
  thingName: ThingName,
  jobDocument: JobDocument.optional(),
  status: JobStatus,
  statusDetails: StatusDetails.optional(),
  queuedAt: JobTime,
  startedAt: JobTime.optional(),
  lastUpdatedAt: JobTime,
  versionNumber: z.number().int().min(0),
  executionNumber: z.number().int().min(0),
  /** AWS IoT Core sends it with a step timeout (jobs MQTT API, JobExecution). */
  approximateSecondsBeforeTimedOut: z.number().min(0).optional(),
});
export type JobExecution = z.infer<typeof JobExecution>;

export const JobExecutionState = z.strictObject({
  status: JobStatus,
  statusDetails: StatusDetails.optional(),
  versionNumber: z.number().int().min(0),
});

export const JobExecutionSummary = z.strictObject({
  jobId: JobId,
  queuedAt: JobTime,
  startedAt: JobTime.optional(),
  lastUpdatedAt: JobTime,
  versionNumber: z.number().int().min(0),
  executionNumber: z.number().int().min(0),
});

export const StepTimeout = z.number().int().min(1).max(10_080);

// Requests (device → service). Besides each request's own fields, the members AWS's `iot-jobs-data` service model
// lists for the request (botocore: `thingName` on every request, `jobId` on describe and update) are accepted,
// as AWS IoT Core accepts them: the AWS IoT Device SDK's IotJobsClient sends its whole request object. The topic is
// what counts; the jobs service refuses a request whose body names another thing or job (docs/JOBS-PROTOCOL.md).
const Addressed = { thingName: ThingName.optional(), clientToken: ClientToken.optional() };
export const GetPendingRequest = z.strictObject({ ...Addressed });
export const StartNextRequest = z.strictObject({
  statusDetails: StatusDetails.optional(),
  stepTimeoutInMinutes: StepTimeout.optional(),
  ...Addressed,
});
export const DescribeRequest = z.strictObject({
  jobId: z.union([JobId, z.literal('$next')]).optional(),
  executionNumber: z.number().int().min(0).optional(),
  includeJobDocument: z.boolean().optional(),
  ...Addressed,
});
export const UpdateRequest = z.strictObject({
  jobId: JobId.optional(),
  status: DeviceSettableStatus,
  statusDetails: StatusDetails.optional(),
  expectedVersion: z.number().int().min(0).optional(),
  executionNumber: z.number().int().min(0).optional(),
  includeJobExecutionState: z.boolean().optional(),
  includeJobDocument: z.boolean().optional(),
  stepTimeoutInMinutes: StepTimeout.optional(),
  ...Addressed,
});
export type UpdateRequest = z.infer<typeof UpdateRequest>;

// Answers (service → device) on …/accepted
export const GetPendingAccepted = z.strictObject({
  inProgressJobs: z.array(JobExecutionSummary),
  queuedJobs: z.array(JobExecutionSummary),
  timestamp: JobTime,
  clientToken: ClientToken.optional(),
});
export const StartNextAccepted = z.strictObject({
  execution: JobExecution.optional(),
  timestamp: JobTime,
  clientToken: ClientToken.optional(),
});
export type StartNextAccepted = z.infer<typeof StartNextAccepted>;
export const DescribeAccepted = z.strictObject({
  execution: JobExecution,
  timestamp: JobTime,
  clientToken: ClientToken.optional(),
});
export const UpdateAccepted = z.strictObject({
  executionState: JobExecutionState.optional(),
  jobDocument: JobDocument.optional(),
  timestamp: JobTime,
  clientToken: ClientToken.optional(),
});
export type UpdateAccepted = z.infer<typeof UpdateAccepted>;
export const JobsErrorCode = z.enum([
  'InvalidTopic',
  'InvalidJson',
  'InvalidRequest',
  'InvalidStateTransition',
  'ResourceNotFound',
  'VersionMismatch',
  'InternalError',
  'RequestThrottled',
  'TerminalStateReached',
]);
export const JobsRejected = z
  .strictObject({
    code: JobsErrorCode,
    message: ShortText,
    clientToken: ClientToken.optional(),
    timestamp: JobTime,
    executionState: JobExecutionState.optional(),
  })
  .refine((r) => !r.executionState || r.code === 'InvalidStateTransition' || r.code === 'VersionMismatch', {
    message: 'executionState comes only with InvalidStateTransition and VersionMismatch',
    path: ['executionState'],
  });

export type JobsRejected = z.infer<typeof JobsRejected>;

// Notifications (service → device)
export const NotifyJobs = z.strictObject({
  timestamp: JobTime,
  jobs: z.strictObject({
    IN_PROGRESS: z.array(JobExecutionSummary).optional(),
    QUEUED: z.array(JobExecutionSummary).optional(),
  }),
});
export const NotifyNext = z.strictObject({ timestamp: JobTime, execution: JobExecution.optional() });

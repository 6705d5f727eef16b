import type { z } from 'zod';
import { AgentConfig } from './agent-config.js';
import { ApiTokenRequest, DeviceAddRequest, DeviceUpdateRequest, EnrolmentTokenRequest, EnrolRequest } from './api.js';
import { ConfigLayer } from './config-layer.js';
import { DesiredConfig, HealthReport, Presence, ReportedConfig } from './device.js';
import { FleetEvent } from './events.js';
import * as jobs from './jobs.js';
import { ReleaseManifestBody, SignedReleaseManifest } from './manifest.js';
import { RolloutPlan } from './plan.js';
import {
  BacklogReport,
  CleanRecord,
  CleanTelemetry,
  SensorPayload,
  TelemetryBatch,
  TelemetryBatchV2Header,
} from './telemetry.js';
import { UpdateJobDocument } from './update.js';

export * from './agent-config.js';
export * from './api.js';
export * from './common.js';
export * from './config-layer.js';
export * from './device.js';
export * from './events.js';
export * from './filters.js';
export * from './jobs.js';
export * from './manifest.js';
export * from './plan.js';
export * from './telemetry.js';
export * from './update.js';

/** Every message schema that crosses a process, by the file name of its exported JSON Schema. */
export const messageSchemas: Readonly<Record<string, z.ZodType>> = Object.freeze({
  'telemetry-batch': TelemetryBatch,
  'telemetry-batch-v2-header': TelemetryBatchV2Header,
  'clean-record': CleanRecord,
  'clean-telemetry': CleanTelemetry,
  'sensor-payload': SensorPayload,
  'backlog-report': BacklogReport,
  'health-report': HealthReport,
  presence: Presence,
  'desired-config': DesiredConfig,
  'reported-config': ReportedConfig,
  'agent-config': AgentConfig,
  'api-device-add': DeviceAddRequest,
  'api-device-update': DeviceUpdateRequest,
  'api-enrol': EnrolRequest,
  'api-enrolment-token': EnrolmentTokenRequest,
  'api-token': ApiTokenRequest,
  'release-manifest': SignedReleaseManifest,
  'release-manifest-body': ReleaseManifestBody,
  'rollout-plan': RolloutPlan,
  'config-layer': ConfigLayer,
  'fleet-event': FleetEvent,
  'update-job-document': UpdateJobDocument,
  'jobs-get-pending-request': jobs.GetPendingRequest,
  'jobs-get-pending-accepted': jobs.GetPendingAccepted,
  'jobs-start-next-request': jobs.StartNextRequest,
  'jobs-start-next-accepted': jobs.StartNextAccepted,
  'jobs-describe-request': jobs.DescribeRequest,
  'jobs-describe-accepted': jobs.DescribeAccepted,
  'jobs-update-request': jobs.UpdateRequest,
  'jobs-update-accepted': jobs.UpdateAccepted,
  'jobs-rejected': jobs.JobsRejected,
  'jobs-notify': jobs.NotifyJobs,
  'jobs-notify-next': jobs.NotifyNext,
});

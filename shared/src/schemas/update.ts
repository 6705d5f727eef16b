import { z } from 'zod';
import { SemVer, SignedReleaseManifest } from './manifest.js';

export const ReleaseName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'release name must be lower-case [a-z0-9._-], 1-64 characters');

/**
 * The job document of a Fleetwave update (the `jobDocument` of a jobs-protocol execution). The manifest is signed;
 * everything else is advisory: the agent verifies the manifest and the artifacts against it, never trusts the rest.
 */
export const UpdateJobDocument = z.strictObject({
  operation: z.literal('fleetwave.update'),
  /** `rollback`: the controller sends a device back to the release it ran before this rollout. */
  purpose: z.enum(['update', 'rollback']).default('update'),
  manifest: SignedReleaseManifest,
  /** Relative artifact URLs (`./app.tar.gz`) are resolved against this (the controller's artifact endpoint). */
  artifactBaseUrl: z
    .string()
    .regex(/^https?:\/\/[^\s]+\/$/, 'artifactBaseUrl must be an http(s) URL ending in /')
    .optional(),
  rollout: z.string().max(64).optional(),
  wave: z.number().int().min(0).max(100).optional(),
});
export type UpdateJobDocument = z.infer<typeof UpdateJobDocument>;

/** What the device runs, per release name (reported with presence). */
export const InstalledReleases = z.record(ReleaseName, SemVer);

/** The stages of the agent's update machine: persisted names, a wire format that never changes. */
export const UPDATE_STAGES = [
  'verifying',
  'downloading',
  'installing',
  'awaiting-activation',
  'activating',
  'health-checking',
  'committing',
  'rolling-back',
  'succeeded',
  'failed',
  'rejected',
] as const;
export const UpdateStage = z.enum(UPDATE_STAGES);

/**
 * The agent's persisted update state (`<dataDir>/updates/state.json`), version 2. Version 1 (before visits were
 * counted per stage) is migrated on load; any other version is refused.
 */
export const UpdateStateFile = z.strictObject({
  v: z.literal(2),
  jobId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
  executionNumber: z.number().int().min(0).optional(),
  versionNumber: z.number().int().min(0).optional(),
  purpose: z.enum(['update', 'rollback']),
  /** null only for a job rejected before its document could be read. */
  manifest: SignedReleaseManifest.nullable(),
  artifactBaseUrl: z.string().max(2048).optional(),
  stage: UpdateStage,
  visits: z.partialRecord(UpdateStage, z.number().int().min(0)),
  previousVersion: z.string().max(64).nullable(),
  slot: z.record(z.string(), z.string()),
  code: z.string().max(64).optional(),
  reason: z.string().max(4096).optional(),
  report: z
    .strictObject({
      status: z.enum(['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED']),
      statusDetails: z.record(z.string(), z.string()),
    })
    .optional(),
  updatedAt: z.number(),
});

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

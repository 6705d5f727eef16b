import { z } from 'zod';
import { ShortText } from './common.js';

export const SemVer = z
  .string()
  .regex(/^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(-[0-9A-Za-z.-]{1,64})?$/, 'version must be semver');
const IsoTime = z.iso.datetime({ offset: true });

export const Artifact = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'artifact name must be a plain file name'),
  url: z
    .string()
    .max(2048)
    .regex(/^(https?:\/\/|\/|\.\/|file:)/, 'url must be http(s), file: or a path'),
  size: z
    .number()
    .int()
    .min(1)
    .max(2 ** 40),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lower-case hex digits'),
});

export const HealthCheck = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('uplink-connected'), withinS: z.number().int().min(1).max(86_400) }),
  z.strictObject({ type: z.literal('process-running'), name: ShortText, forS: z.number().int().min(1).max(86_400) }),
  z.strictObject({
    type: z.literal('command'),
    command: z.array(ShortText).min(1).max(64),
    timeoutS: z.number().int().min(1).max(3600),
  }),
]);

export const InstallSpec = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('agent') }),
  z.strictObject({
    type: z.literal('files'),
    /** The application's name: its slots live in the agent's `appsDir/<target>`. */
    target: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'target must be an application name, not a path'),
  }),
  z.strictObject({ type: z.literal('ab-rootfs'), bootloader: z.enum(['rpi-tryboot', 'uboot']) }),
  z.strictObject({ type: z.literal('command'), command: z.array(ShortText).min(1).max(64) }),
]);

/** A release manifest without its signature: what is signed (in canonical JSON). */
export const ReleaseManifestBody = z.strictObject({
  schema: z.literal(1),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'name must be lower-case [a-z0-9._-], 1-64 characters'),
  version: SemVer,
  hardware: z
    .array(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/))
    .min(1)
    .max(64),
  artifacts: z.array(Artifact).min(1).max(64),
  install: InstallSpec,
  healthChecks: z.array(HealthCheck).max(32).default([]),
  allowDowngrade: z.boolean().default(false),
  createdAt: IsoTime,
  expiresAt: IsoTime.optional(),
  notes: z.string().max(4096).optional(),
});
export type ReleaseManifestBody = z.infer<typeof ReleaseManifestBody>;

export const ManifestSignature = z.strictObject({
  alg: z.literal('ed25519'),
  keyId: z.string().regex(/^[0-9a-f]{16}$/, 'keyId must be 16 lower-case hex digits'),
  value: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'signature must be 64 bytes in base64'),
});

export const SignedReleaseManifest = z.strictObject({
  ...ReleaseManifestBody.shape,
  signature: ManifestSignature,
});
export type SignedReleaseManifest = z.infer<typeof SignedReleaseManifest>;

import { z } from 'zod';
import { cronProblem } from '../windows.js';
import { DeviceId, Duration, Priority, ShortText } from './common.js';
import { FilterRules } from './filters.js';

/**
 * A stream mapping: an MQTT topic pattern on the local listener, with `{name}` capturing one segment, and the stream
 * name built from the captures. The default maps `sensors/<sensor>/<metric>` to the stream `<sensor>/<metric>`.
 */
export const StreamMapping = z.strictObject({
  pattern: z
    .string()
    .min(1)
    .max(200)
    .regex(/^([A-Za-z0-9_.-]+|\{[a-z][a-z0-9_]*\})(\/([A-Za-z0-9_.-]+|\{[a-z][a-z0-9_]*\}))*$/, {
      message: 'pattern must be segments that are literals or {name} captures, joined by /',
    }),
  stream: z.string().min(1).max(200),
  priority: Priority.default('telemetry'),
  /** Readings older than this are expired from the outbox (and reported as lost). */
  ttl: Duration.optional(),
});
export type StreamMapping = z.infer<typeof StreamMapping>;

export const SensorUser = z
  .strictObject({
    username: z.string().min(1).max(128),
    password: z.string().min(1).max(256).optional(),
    passwordEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/)
      .optional(),
  })
  .refine((u) => (u.password === undefined) !== (u.passwordEnv === undefined), {
    message: 'give exactly one of password or passwordEnv',
  });

const Port = z.number().int().min(0).max(65_535);
/** The default outbox.maxAckDelay: meets the flash aim at 10 readings/s (bench/README.md, "Flash"). */
export const DEFAULT_MAX_ACK_DELAY_MS = 1000;

/** The agent's YAML configuration file. Every field but `device.id` has a default. */
export const AgentConfig = z.strictObject({
  device: z.strictObject({ id: DeviceId }),
  dataDir: z.string().min(1).max(1024).default('./.fleetwave/agent'),
  ingest: z
    .strictObject({
      /** The local MQTT listener for sensors; false: no listener (a gateway that only reports its health). */
      enabled: z.boolean().default(true),
      host: z.string().min(1).max(255).default('127.0.0.1'),
      port: Port.default(1884),
      users: z.array(SensorUser).max(10_000).default([]),
      streams: z
        .array(StreamMapping)
        .min(1)
        .max(1000)
        .default([{ pattern: 'sensors/{sensor}/{metric}', stream: '{sensor}/{metric}', priority: 'telemetry' }]),
      maxPayloadBytes: z.number().int().min(16).max(65_536).default(1024),
      /** Largest MQTT packet a sensor may send (topic and payload); a larger one closes its connection unread. */
      maxPacketBytes: z.number().int().min(256).max(1_048_576).default(65_536),
      /** A reading's own timestamp may be at most this far in the future or past (else E_READING_TIMESTAMP). */
      maxClockSkew: Duration.prefault('7d'),
    })
    .default({
      enabled: true,
      host: '127.0.0.1',
      port: 1884,
      users: [],
      streams: [{ pattern: 'sensors/{sensor}/{metric}', stream: '{sensor}/{metric}', priority: 'telemetry' }],
      maxPayloadBytes: 1024,
      maxPacketBytes: 65_536,
      maxClockSkew: 7 * 86_400_000,
    }),
  outbox: z
    .strictObject({
      /**
       * At most one commit (one chunk, one fsync) per this long: a reading after a quiet spell commits at once, one
       * in a busy spell waits for maxAckDelay after the last commit; a group of maxGroup readings commits at once. A
       * sensor's PUBACK waits at most this. Longer spares the flash (see agent/README.md, "Flash wear"), shorter
       * answers sensors sooner.
       */
      maxAckDelay: Duration.optional(),
      maxGroup: z.number().int().min(1).max(10_000).default(250),
      /** Deprecated (before maxAckDelay): read as maxAckDelay in milliseconds when that is not set. */
      commitWindowMs: z.number().min(0).max(1000).optional(),
      /** FULL: a commit survives power loss. NORMAL (WAL): survives a process crash, may lose the last commits on power loss. */
      synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
      capBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(2 ** 40)
        .default(256 * 1024 * 1024),
      fullPolicy: z.enum(['drop-oldest', 'refuse']).default('drop-oldest'),
      /** Below this much free space in the data directory's file system the agent refuses readings and drains. */
      minFreeBytes: z
        .number()
        .int()
        .min(0)
        .max(2 ** 40)
        .default(4 * 1024 * 1024),
      /** A file of this size kept in the data directory, released when the disk fills so deletes can still commit. */
      reserveBytes: z
        .number()
        .int()
        .min(0)
        .max(2 ** 30)
        .default(1024 * 1024),
    })
    .transform(({ commitWindowMs, maxAckDelay, ...o }) => ({
      ...o,
      maxAckDelay:
        maxAckDelay ?? (commitWindowMs === undefined ? DEFAULT_MAX_ACK_DELAY_MS : Math.round(commitWindowMs)),
    }))
    .prefault({}),
  uplink: z
    .strictObject({
      url: z
        .string()
        .regex(/^(mqtts?|tcp|tls|wss?):\/\/[^\s]+$/, 'url must be mqtt://, mqtts://, tcp://, tls://, ws:// or wss://')
        .default('mqtt://127.0.0.1:1883'),
      root: z.string().min(1).max(128).default('fleetwave'),
      caFile: z.string().max(1024).optional(),
      certFile: z.string().max(1024).optional(),
      keyFile: z.string().max(1024).optional(),
      username: ShortText.optional(),
      tokenFile: z.string().max(1024).optional(),
      tokenEnv: z
        .string()
        .regex(/^[A-Z_][A-Z0-9_]*$/)
        .optional(),
      batchMaxRecords: z.number().int().min(1).max(10_000).default(500),
      batchMaxBytes: z
        .number()
        .int()
        .min(1024)
        .max(1024 * 1024)
        .default(128 * 1024),
      /** v2: compact chunks (shared/wire-v2.md). v1: JSON, for a controller older than v2; compression applies to v1 only. */
      format: z.enum(['v2', 'v1']).default('v2'),
      compression: z.enum(['none', 'gzip']).default('none'),
      inflightWindow: z.number().int().min(1).max(64).default(8),
      backoffMinMs: z.number().int().min(10).max(60_000).default(500),
      backoffMaxMs: z.number().int().min(100).max(3_600_000).default(30_000),
      /**
       * After losing a connection that worked, the first attempt waits a random delay within this, so a fleet that lost
       * its broker in one instant comes back spread over it (0s: at once, then the backoff).
       */
      reconnectSpread: Duration.prefault('3s'),
      /**
       * With certFile and keyFile: the agent renews its certificate by itself this long before it expires (a new key,
       * a CSR to the controller, the new pair swapped in crash-safely).
       */
      renewBefore: Duration.prefault('30d'),
      keepaliveS: z.number().int().min(5).max(3600).default(30),
      backlogInterval: Duration.prefault('30s'),
    })
    .default({
      url: 'mqtt://127.0.0.1:1883',
      root: 'fleetwave',
      batchMaxRecords: 500,
      batchMaxBytes: 128 * 1024,
      format: 'v2',
      compression: 'none',
      inflightWindow: 8,
      backoffMinMs: 500,
      backoffMaxMs: 30_000,
      reconnectSpread: 3000,
      renewBefore: 30 * 86_400_000,
      keepaliveS: 30,
      backlogInterval: 30_000,
    }),
  /** The gateway's own health, sampled from /proc and /sys (root: '/' on a gateway, a recorded tree in tests). */
  health: z
    .strictObject({
      interval: Duration.prefault('60s'),
      /** How often a Raspberry Pi's under-voltage state is looked at to count episodes (one small sysfs read). */
      underVoltagePoll: Duration.prefault('2s').refine((ms) => ms >= 100, 'must be at least 100ms'),
      root: z.string().min(1).max(1024).default('/'),
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  /** Staged updates through the jobs protocol (off unless enabled; see agent/README.md "Updates"). */
  updates: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** The jobs topic root: the controller's (`fleetwave/jobs`) or AWS IoT Core's (`$aws/things`). */
      jobsRoot: z.string().min(1).max(128).default('fleetwave/jobs'),
      /** This gateway's hardware name, matched against a release's `hardware` list. */
      hardware: z
        .string()
        .regex(/^[A-Za-z0-9._-]{1,64}$/)
        .default('generic'),
      /** PEM files of the Ed25519 public keys a release must be signed with. */
      trustedKeys: z.array(z.string().min(1).max(1024)).max(16).default([]),
      /** Where `files` releases keep their slots (`<appsDir>/<target>/{current,slots/…}`); default `<dataDir>/apps`. */
      appsDir: z.string().min(1).max(1024).optional(),
      /** When an installed update may be activated: at once, inside a window, or while no lock file exists. */
      activation: z
        .discriminatedUnion('mode', [
          z.strictObject({ mode: z.literal('immediate') }),
          z.strictObject({ mode: z.literal('lock-file'), path: z.string().min(1).max(1024) }),
          z.strictObject({
            mode: z.literal('window'),
            cron: z.string().min(9).max(128),
            duration: Duration,
            timezone: z.string().min(1).max(64).default('UTC'),
          }),
        ])
        .default({ mode: 'immediate' }),
      /** Run after activation; the update is committed only when it exits 0 within the deadline. */
      healthCommand: z.array(z.string().min(1).max(1024)).min(1).max(64).optional(),
      /** Run on activation and rollback of a `files` release (for example `systemctl restart my-app`). */
      restartCommand: z.array(z.string().min(1).max(1024)).min(1).max(64).optional(),
      healthDeadline: Duration.prefault('5m'),
      /** The reboot-loop guard: starts of the new version (activation, health check) before it is rolled back. */
      maxAttempts: z.number().int().min(1).max(20).default(3),
      /** The crash-loop guard of the other stages: starts of one stage (a crash or power loss each time) before FAILED. */
      maxStageStarts: z.number().int().min(1).max(100).default(5),
      downloadRetries: z.number().int().min(0).max(100).default(5),
      downloadBackoffMs: z.number().int().min(10).max(600_000).default(1000),
      maxArtifactBytes: z
        .number()
        .int()
        .min(1024)
        .max(2 ** 40)
        .default(2 ** 30),
      /** Executables a `command` release may name (its `install.command[0]` must be one of these). */
      commandInstallers: z.array(z.string().min(1).max(1024)).max(64).default([]),
      /**
       * The agent's own install layout, for `agent` releases (self-update): `<root>/bin/fleetwave-agent` is a symlink
       * to `<root>/versions/<version>/fleetwave-agent` (the install script lays it out); absent: no self-update.
       */
      agentRoot: z.string().min(1).max(1024).optional(),
      /** A/B root filesystems switched through the boot loader (`ab-rootfs` releases); see agent/README.md. */
      abRootfs: z
        .strictObject({
          bootloader: z.enum(['rpi-tryboot', 'uboot']),
          /** The two root file system slots: the block device (or image file) and its partition number. */
          slots: z.strictObject({
            a: z.strictObject({ device: z.string().min(1).max(1024), partition: z.number().int().min(1).max(128) }),
            b: z.strictObject({ device: z.string().min(1).max(1024), partition: z.number().int().min(1).max(128) }),
          }),
          /** The boot partition, mounted (autoboot.txt for tryboot, uboot.env for U-Boot). */
          bootDir: z.string().min(1).max(1024).default('/boot/firmware'),
          /** Raspberry Pi: where the firmware says which partition it booted. */
          deviceTreeDir: z.string().min(1).max(1024).default('/proc/device-tree/chosen/bootloader'),
          /** U-Boot: the kernel command line, which carries `fleetwave.slot=a|b`. */
          cmdlineFile: z.string().min(1).max(1024).default('/proc/cmdline'),
          ubootEnvSize: z.number().int().min(1024).max(1_048_576).default(0x4000),
          /** Changes on every boot: how the agent tells a reboot happened. */
          bootIdFile: z.string().min(1).max(1024).default('/proc/sys/kernel/random/boot_id'),
          /** Default: `reboot "0 tryboot"` (Raspberry Pi), `systemctl reboot` (U-Boot). */
          rebootCommand: z.array(z.string().min(1).max(1024)).min(1).max(64).optional(),
        })
        .optional(),
      /** Minutes a step may take before the jobs service times the execution out. */
      stepTimeoutMinutes: z.number().int().min(1).max(10_080).default(60),
    })
    .superRefine((u, ctx) => {
      const a = u.activation;
      const problem = a.mode === 'window' ? cronProblem(a.cron, a.timezone) : undefined;
      if (problem) ctx.addIssue({ code: 'custom', message: problem, path: ['activation'] });
    })
    .prefault({}),
  /** Edge filter rules; the cloud may replace them with a desired-config document. */
  filters: FilterRules.default([]),
  log: z
    .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
    .default({ level: 'info' }),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

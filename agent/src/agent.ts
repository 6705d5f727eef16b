import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AgentConfig,
  BacklogReport,
  DesiredConfig,
  decodeMessage,
  FleetwaveError,
  type ReportedConfig,
  type TrustedKey,
} from '@fleetwave/shared';
import type { Logger } from 'pino';
import { createHealthReporter } from './health/reporter.js';
import type { IngestListener } from './ingest/listener.js';
import { Outbox, type OutboxStatus } from './outbox/outbox.js';
import { SqliteOutboxStore } from './outbox/sqlite-store.js';
import { sideDuty } from './side-duty.js';
import { DiskSpace, type SpaceState } from './storage/space.js';
import { compileStreamMap } from './streams.js';
import type { Installer } from './updates/installers/types.js';
import type { UpdateManager } from './updates/update-manager.js';
import { CertificateRenewal } from './uplink/cert-renewal.js';
import { Uplink, type UplinkOptions } from './uplink/uplink.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentDeps {
  config: AgentConfig;
  log: Logger;
  /** TLS material and credentials, read by main.ts from the files and environment the config names. */
  uplinkClient: UplinkOptions['client'];
  /** username → password for sensors, resolved by main.ts. */
  sensorUsers: ReadonlyMap<string, string>;
  now?: () => number;
  /** The Ed25519 keys releases must be signed with (read by main.ts from `updates.trustedKeys`). */
  trustedKeys?: readonly TrustedKey[];
  /** Every persisted update stage (the CLI prints it as a JSON line). */
  onUpdateStage?: (s: { jobId: string; stage: string; code?: string }) => void;
  /** Ends the process for the service manager to start the agent again (self-update); absent: no self-update. */
  requestRestart?: () => void;
}

export interface AgentStatus extends OutboxStatus {
  device: string;
  storage: SpaceState;
  filtersVersion: number;
  connected: boolean;
  inflightBatches: number;
  reconnects: number;
  ingest: { host: string; port: number } | null;
  update: ReturnType<UpdateManager['status']>;
  releases: Record<string, string>;
  ts: number;
}

/** The composition root: builds an unstarted agent. Only main.ts reads files and the environment. */
export function createAgent(deps: AgentDeps) {
  const { config, log } = deps;
  const now = deps.now ?? Date.now;
  mkdirSync(config.dataDir, { recursive: true });
  const statusPath = join(config.dataDir, 'status.json');
  let outbox: Outbox | undefined;
  const space = new DiskSpace({
    dir: config.dataDir,
    minFreeBytes: config.outbox.minFreeBytes,
    reserveBytes: config.outbox.reserveBytes,
    log: log.child({ part: 'storage' }),
    now,
    outboxBytes: () => outbox?.status().bytes ?? 0,
    onChange: () => reportBacklogSoon(),
  });
  let uplink: Uplink | undefined;
  let renewing: CertificateRenewal | undefined;
  let listener: IngestListener | undefined;
  let ingestAddr: { host: string; port: number } | null = null;
  let timers: NodeJS.Timeout[] = [];
  // the updates subsystem and the sensor listener are loaded only when the configuration uses them (start())
  let updates: UpdateManager | undefined;

  async function abRootfsInstaller(ab: NonNullable<AgentConfig['updates']['abRootfs']>): Promise<Installer> {
    const { AbRootfsInstaller } = await import('./updates/installers/ab-rootfs.js');
    const { RpiTryboot, UbootEnvBootloader } = await import('./updates/installers/bootloader.js');
    const partitions = { a: ab.slots.a.partition, b: ab.slots.b.partition };
    return new AbRootfsInstaller({
      bootloader:
        ab.bootloader === 'rpi-tryboot'
          ? new RpiTryboot({ bootDir: ab.bootDir, deviceTreeDir: ab.deviceTreeDir, partitions })
          : new UbootEnvBootloader({
              envFile: join(ab.bootDir, 'uboot.env'),
              envSize: ab.ubootEnvSize,
              cmdlineFile: ab.cmdlineFile,
            }),
      devices: { a: ab.slots.a.device, b: ab.slots.b.device },
      rebootCommand:
        ab.rebootCommand ?? (ab.bootloader === 'rpi-tryboot' ? ['reboot', '0 tryboot'] : ['systemctl', 'reboot']),
      bootIdFile: ab.bootIdFile,
    });
  }

  async function createUpdates(): Promise<UpdateManager> {
    const { UpdateManager } = await import('./updates/update-manager.js');
    const { FilesInstaller } = await import('./updates/installers/files.js');
    const { CommandInstaller } = await import('./updates/installers/command.js');
    const { AgentSelfInstaller } = await import('./updates/installers/agent-self.js');
    const u = deps.uplinkClient;
    const basic =
      u.username && u.password ? Buffer.from(`${u.username}:${String(u.password)}`).toString('base64') : undefined;
    return new UpdateManager({
      config: config.updates,
      dataDir: config.dataDir,
      device: config.device.id,
      trusted: deps.trustedKeys ?? [],
      installers: {
        files: new FilesInstaller({
          appsDir: config.updates.appsDir ?? join(config.dataDir, 'apps'),
          maxBytes: config.updates.maxArtifactBytes * 4,
        }),
        ...(config.updates.abRootfs && { 'ab-rootfs': await abRootfsInstaller(config.updates.abRootfs) }),
        ...(config.updates.agentRoot &&
          deps.requestRestart && {
            agent: new AgentSelfInstaller({
              root: config.updates.agentRoot,
              runningVersion: AGENT_VERSION,
              restart: deps.requestRestart,
            }),
          }),
        command: new CommandInstaller({
          allowed: config.updates.commandInstallers,
          stateDir: join(config.dataDir, 'updates', 'command-state'),
        }),
      },
      send: (topic, payload) => uplink?.publishRaw(topic, payload) ?? false,
      connected: () => uplink?.connected ?? false,
      now,
      log: log.child({ part: 'updates' }),
      downloadHeaders: basic ? { authorization: `Basic ${basic}` } : {},
      onInstalled: () => uplink?.announce(),
      onStage: deps.onUpdateStage,
    });
  }

  function status(): AgentStatus {
    if (!outbox || !uplink) throw new Error('agent is not started');
    return {
      ...outbox.status(),
      device: config.device.id,
      storage: space.state(),
      filtersVersion: outbox.appliedFilters().version,
      connected: uplink.connected,
      inflightBatches: uplink.inflightCount,
      reconnects: uplink.reconnects,
      ingest: ingestAddr,
      update: updates?.status() ?? null,
      releases: updates?.installed().current ?? {},
      ts: now(),
    };
  }

  function reportBacklog(): void {
    const s = status();
    const report = BacklogReport.parse({
      v: 1,
      device: s.device,
      ts: s.ts,
      depth: s.depth,
      bytes: s.bytes,
      oldestAgeMs: s.oldestAgeMs,
      inflightBatches: s.inflightBatches,
      lastSeq: s.lastSeq,
      dropped: s.dropped,
      refused: s.refused,
      accepted: s.accepted,
      filtered: s.filtered,
      filtersVersion: s.filtersVersion,
      storage: s.storage,
    });
    uplink?.publishStatus('backlog', JSON.stringify(report));
    writeStatus(s);
  }

  /** status.json for `fleetwave-agent status` and supervisors, replaced atomically (readers never see half a file). */
  function writeStatus(s: AgentStatus): void {
    try {
      writeFileSync(`${statusPath}.tmp`, `${JSON.stringify(s, null, 2)}\n`);
      renameSync(`${statusPath}.tmp`, statusPath);
    } catch (err) {
      rmSync(`${statusPath}.tmp`, { force: true }); // no half-written file left behind (a full disk)
      space.noteError(err, 'status file');
      throw err;
    }
  }

  const backlogDuty = sideDuty(log, 'backlog report and status file', reportBacklog);
  /** The disk filled or has room again: say so upstream now, not at the next interval. */
  function reportBacklogSoon(): void {
    setImmediate(backlogDuty);
  }
  let health: ReturnType<typeof createHealthReporter> | undefined;
  let backlogTimer: NodeJS.Timeout | undefined;
  /** The backlog report interval: the applied desired config's, else the config file's. */
  function scheduleBacklog(): void {
    if (backlogTimer) clearInterval(backlogTimer);
    const ms = outbox?.appliedFilters().tunables?.backlogIntervalMs ?? config.uplink.backlogInterval;
    backlogTimer = setInterval(backlogDuty, ms);
  }

  /**
   * A desired-config document from the cloud: validated, then applied atomically (or rejected with the reason, the
   * old rules running on); either way the outcome is reported. Versions not above the applied one are re-reported.
   */
  function onDesiredConfig(payload: Buffer): void {
    const box = outbox!;
    const report = (r: Omit<ReportedConfig, 'v' | 'device' | 'ts'>) =>
      uplink?.publishReported(JSON.stringify({ v: 1, device: config.device.id, ts: now(), ...r }));
    let desired: DesiredConfig;
    try {
      desired = decodeMessage(DesiredConfig, payload, 'desired config');
      if (desired.device !== config.device.id) {
        throw new FleetwaveError(
          'E_CONFIG_INVALID',
          `desired config is for ${desired.device}, not ${config.device.id}`,
        );
      }
    } catch (err) {
      const version = /"version"\s*:\s*(\d+)/.exec(payload.toString('utf8').slice(0, 4096))?.[1];
      log.warn({ err: (err as Error).message }, 'desired config rejected');
      report({ version: Number(version ?? 0), status: 'rejected', reason: (err as Error).message.slice(0, 256) });
      return;
    }
    const applied = box.appliedFilters();
    if (desired.version <= applied.version) {
      report({ version: applied.version, status: 'applied' });
      return;
    }
    const { filters, ...tunables } = desired.config;
    box.applyFilters({ version: desired.version, rules: filters ?? config.filters, tunables });
    scheduleBacklog();
    health?.reschedule();
    log.info({ version: desired.version }, 'desired config applied');
    report({ version: desired.version, status: 'applied' });
  }

  return {
    /** Starts the agent; `ingest` is the sensor listener's address (null with `ingest.enabled: false`). */
    async start(): Promise<{ ingest: { host: string; port: number } | null }> {
      // on a full disk the reserve is released before the outbox opens: the agent starts, and drains
      space.start();
      if (config.updates.enabled) updates = await createUpdates();
      const store = new SqliteOutboxStore(join(config.dataDir, 'outbox.db'), {
        synchronous: config.outbox.synchronous,
      });
      outbox = new Outbox(store, {
        device: config.device.id,
        capBytes: config.outbox.capBytes,
        fullPolicy: config.outbox.fullPolicy,
        maxAckDelayMs: config.outbox.maxAckDelay,
        maxGroup: config.outbox.maxGroup,
        batchMaxRecords: config.uplink.batchMaxRecords,
        batchMaxBytes: config.uplink.batchMaxBytes,
        format: config.uplink.format,
        compression: config.uplink.compression,
        now,
        onCommitted: () => uplink?.pump(),
        wantBatches: () => uplink?.freeSlots() ?? 0,
        filters: config.filters,
        space,
      });
      // a client certificate is renewed by the agent itself before it expires
      let renewalTarget: ((m: { cert: Buffer; key: Buffer }) => void) | undefined;
      const renewal =
        config.uplink.certFile && config.uplink.keyFile
          ? new CertificateRenewal({
              device: config.device.id,
              root: config.uplink.root,
              certFile: config.uplink.certFile,
              keyFile: config.uplink.keyFile,
              renewBeforeMs: config.uplink.renewBefore,
              now,
              log: log.child({ part: 'certificate' }),
              publish: (topic, payload) => uplink?.publish(topic, payload) ?? false,
              onRenewed: (m) => renewalTarget?.(m),
            })
          : undefined;
      const upd = updates;
      uplink = new Uplink({
        url: config.uplink.url,
        client: { keepalive: config.uplink.keepaliveS, ...deps.uplinkClient },
        root: config.uplink.root,
        device: config.device.id,
        agentVersion: AGENT_VERSION,
        inflightWindow: config.uplink.inflightWindow,
        backoffMinMs: config.uplink.backoffMinMs,
        backoffMaxMs: config.uplink.backoffMaxMs,
        reconnectSpreadMs: config.uplink.reconnectSpread,
        outbox,
        log: log.child({ part: 'uplink' }),
        now,
        onDesiredConfig,
        onConnected: () => health?.publishLatest(),
        ...((updates || renewal) && {
          subscriptions: [...(updates?.subscriptions() ?? []), ...(renewal ? [renewal.issuedTopic] : [])],
          onMessage: (topic: string, payload: Buffer) => {
            if (!renewal?.onMessage(topic, payload)) updates?.onMessage(topic, payload);
          },
          onSubscribed: () => {
            updates?.onSubscribed();
            renewal?.check();
          },
        }),
        ...(upd && { presenceExtra: () => ({ releases: upd.installed().current }) }),
      });
      const up = uplink;
      if (renewal) renewalTarget = (m) => up.replaceClientMaterial(m);
      renewing = renewal;
      if (config.ingest.enabled) {
        const { IngestListener } = await import('./ingest/listener.js');
        listener = new IngestListener({
          host: config.ingest.host,
          port: config.ingest.port,
          users: deps.sensorUsers,
          limits: { maxPayloadBytes: config.ingest.maxPayloadBytes, maxClockSkewMs: config.ingest.maxClockSkew },
          maxPacketBytes: config.ingest.maxPacketBytes,
          route: compileStreamMap(config.ingest.streams),
          sink: outbox,
          now,
          log: log.child({ part: 'ingest' }),
        });
      }
      const box = outbox;
      timers = [
        ...(renewal
          ? [
              setInterval(
                sideDuty(log, 'certificate renewal', () => renewal.check()),
                3_600_000,
              ),
            ]
          : []),
        setInterval(
          sideDuty(log, 'time-to-live expiry', () => box.expire()),
          Math.min(60_000, config.uplink.backlogInterval),
        ),
        setInterval(
          sideDuty(log, 'filter ticks', () => box.tickFilters()),
          1000,
        ),
        setInterval(
          sideDuty(log, 'disk space', () => space.check()),
          1000,
        ),
      ];
      scheduleBacklog();
      uplink.start();
      updates?.start();
      health = createHealthReporter({
        config,
        outbox: box,
        log: log.child({ part: 'health' }),
        now,
        reconnects: () => uplink?.reconnects ?? 0,
        publish: (json) => uplink?.publishStatus('health', json),
        storageFull: () => space.isFull,
      });
      health.start();
      ingestAddr = listener ? await listener.start() : null;
      log.info({ ingest: ingestAddr, uplink: config.uplink.url, device: config.device.id }, 'agent started');
      return { ingest: ingestAddr };
    },

    status,

    /** Clean shutdown: stop ingest, commit what is queued, wait up to graceMs for in-flight acknowledgements. */
    async stop(graceMs = 5000): Promise<void> {
      for (const t of timers) clearInterval(t);
      timers = [];
      if (backlogTimer) clearInterval(backlogTimer);
      renewing?.stop();
      updates?.stop();
      await listener?.stop();
      health?.stop();
      outbox?.flush();
      await uplink?.stop(graceMs);
      if (outbox) sideDuty(log, 'status file', () => writeStatus(status()))();
      outbox?.close();
      log.info('agent stopped');
    },
  };
}

export type Agent = ReturnType<typeof createAgent>;

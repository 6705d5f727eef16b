import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '@fleetwave/shared';
import type { Logger } from 'pino';
import type { Outbox } from '../outbox/outbox.js';
import { sideDuty } from '../side-duty.js';
import { collectHealth, HEALTH_FILES, healthReadings, watchdogFired } from './collector.js';
import { parseBootId } from './parsers.js';
import { deriveRestartReason, type RestartReason, type RunMarker } from './restart.js';
import { underVoltageWatch } from './undervoltage.js';

const RUN_MARKER = 'runMarker';

export interface HealthReporterDeps {
  config: AgentConfig;
  outbox: Outbox;
  log: Logger;
  now: () => number;
  reconnects: () => number;
  /** Publishes the latest report on the device's health topic (when connected). */
  publish: (json: string) => void;
  /** Whether the data directory is full (reported with every sample). */
  storageFull?: () => boolean;
}

/**
 * Samples the gateway's health at an interval (the applied desired config's healthIntervalMs, else the config
 * file's), sends every numeric field as a reading of the `_health/<field>` streams through the outbox (durable, like
 * telemetry) and the whole report on the health topic. At start it tells how the previous run ended from the marker
 * it persists: written unclean at start, clean at a clean stop.
 */
export function createHealthReporter(d: HealthReporterDeps) {
  const { config, outbox } = d;
  let timer: NodeJS.Timeout | undefined;
  let uvTimer: NodeJS.Timeout | undefined;
  let reason: RestartReason = 'unknown';
  let starts = 0;
  let bootId: string | null = null;
  let latest: string | undefined;
  const src = { root: config.health.root };
  let underVoltage: ReturnType<typeof underVoltageWatch> | undefined;

  function sample(): void {
    const collected = collectHealth(src, {
      device: config.device.id,
      now: d.now(),
      restartReason: reason,
      agentRestarts: Math.max(0, starts - 1),
      reconnects: d.reconnects(),
      backlogDepth: outbox.status().depth,
      underVoltageEvents: underVoltage?.events,
      diskPath: config.dataDir,
    });
    const report = d.storageFull ? { ...collected, storageFull: d.storageFull() } : collected;
    for (const r of healthReadings(report)) {
      outbox.submit(
        { stream: r.stream, priority: 'telemetry', rank: 2, ttlMs: undefined },
        { value: r.value, ts: report.ts },
        () => {},
        true,
      );
    }
    latest = JSON.stringify(report);
    d.publish(latest);
  }

  function schedule(): void {
    if (timer) clearInterval(timer);
    if (!config.health.enabled) return;
    timer = setInterval(
      sideDuty(d.log, 'health sample', sample),
      outbox.appliedFilters().tunables?.healthIntervalMs ?? config.health.interval,
    );
  }

  return {
    start(): RestartReason {
      let text: string | undefined;
      try {
        text = readFileSync(join(config.health.root, HEALTH_FILES.bootId), 'utf8');
      } catch {
        text = undefined;
      }
      bootId = text === undefined ? null : (parseBootId(text) ?? null);
      const stored = outbox.setting(RUN_MARKER);
      const prev = stored ? (JSON.parse(stored) as RunMarker) : undefined;
      reason = deriveRestartReason(prev, bootId, watchdogFired(src));
      starts = (prev?.starts ?? 0) + 1;
      // on a full disk this cannot be written: the agent starts all the same (the next start may misread the reason)
      sideDuty(d.log, 'run marker', () =>
        outbox.setSetting(RUN_MARKER, JSON.stringify({ bootId, clean: false, starts } satisfies RunMarker)),
      )();
      d.log.info({ restartReason: reason, starts }, 'agent run recorded');
      if (config.health.enabled) {
        underVoltage = underVoltageWatch(src);
        underVoltage.poll();
        if (underVoltage.available) {
          uvTimer = setInterval(
            sideDuty(d.log, 'under-voltage watch', () => underVoltage?.poll()),
            config.health.underVoltagePoll,
          );
          uvTimer.unref();
        }
        sample();
      }
      schedule();
      return reason;
    },
    /** Publishes the latest report again (the uplink just connected). */
    publishLatest(): void {
      if (latest) d.publish(latest);
    },
    /** The interval may have changed with a desired config. */
    reschedule: schedule,
    /** A clean stop: the next start will know. */
    stop(): void {
      if (timer) clearInterval(timer);
      if (uvTimer) clearInterval(uvTimer);
      sideDuty(d.log, 'run marker at stop', () =>
        outbox.setSetting(RUN_MARKER, JSON.stringify({ bootId, clean: true, starts } satisfies RunMarker)),
      )();
    },
  };
}

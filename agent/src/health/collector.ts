import { readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { HealthReport } from '@fleetwave/shared';
import {
  parseBootId,
  parseCount,
  parseErrStats,
  parseLifeTime,
  parseLoad1,
  parseMeminfo,
  parseTempMilliC,
  parseThrottled,
  parseUptime,
  parseWirelessDbm,
} from './parsers.js';
import type { RestartReason } from './restart.js';

/** Where the collector reads, relative to `root` ('/' on a gateway; a recorded tree in tests). */
export const HEALTH_FILES = {
  cpuTemp: 'sys/class/thermal/thermal_zone0/temp',
  throttled: 'sys/devices/platform/soc/soc:firmware/get_throttled',
  loadavg: 'proc/loadavg',
  meminfo: 'proc/meminfo',
  uptime: 'proc/uptime',
  bootId: 'proc/sys/kernel/random/boot_id',
  emmcLifeTime: 'sys/block/mmcblk0/device/life_time',
  wireless: 'proc/net/wireless',
  watchdogBootstatus: 'sys/class/watchdog/watchdog0/bootstatus',
  /** SD/MMC error counters (Linux ≥ 6.0, debugfs: readable by root). */
  mmcErrStats: 'sys/kernel/debug/mmc0/err_stats',
  /** Link up/down changes since boot, per interface (summed over those present). */
  carrierChanges: ['sys/class/net/eth0/carrier_changes', 'sys/class/net/wlan0/carrier_changes'],
} as const;

export interface HealthContext {
  device: string;
  now: number;
  restartReason: RestartReason;
  agentRestarts: number;
  reconnects: number;
  backlogDepth: number;
  /** Under-voltage episodes since the agent started (undervoltage.ts); undefined where nothing tells. */
  underVoltageEvents?: number | undefined;
  /** The directory whose file system's usage is reported (the agent's data directory). */
  diskPath: string;
}

export interface HealthSource {
  root: string;
  read?: (path: string) => string;
  statfs?: (path: string) => { blocks: number; bfree: number; bavail: number };
}

/** Reads one file under the root; undefined when it is missing or unreadable. */
export function reader(src: HealthSource) {
  const read = src.read ?? ((p: string) => readFileSync(p, 'utf8'));
  return (rel: string): string | undefined => {
    try {
      return read(join(src.root, rel));
    } catch {
      return undefined;
    }
  };
}

/**
 * One health sample of the gateway. Every reader tolerates a missing or garbled file and lists what it could not
 * read in `unreadable`; a Raspberry Pi's firmware flags and eMMC wear are simply absent elsewhere. Cheap: a handful of
 * small files and one statfs.
 */
export function collectHealth(src: HealthSource, ctx: HealthContext): HealthReport {
  const read = reader(src);
  const unreadable: string[] = [];
  const take = <T>(name: string, file: string, parse: (t: string) => T | undefined): T | undefined => {
    const text = read(file);
    const v = text === undefined ? undefined : parse(text);
    if (v === undefined) unreadable.push(name);
    return v;
  };
  const mem = take('memory', HEALTH_FILES.meminfo, (t) => {
    const m = parseMeminfo(t);
    return m.memUsedPct === undefined ? undefined : m;
  });
  let diskUsedPct: number | undefined;
  try {
    const s = (src.statfs ?? statfsSync)(ctx.diskPath);
    if (s.blocks > 0) diskUsedPct = Math.round(((s.blocks - s.bavail) / s.blocks) * 1000) / 10;
  } catch {
    unreadable.push('disk');
  }
  const report: HealthReport = {
    v: 1,
    device: ctx.device,
    ts: ctx.now,
    restartReason: ctx.restartReason,
    agentRestarts: ctx.agentRestarts,
    reconnects: ctx.reconnects,
    backlogDepth: ctx.backlogDepth,
    unreadable,
  };
  const set = <K extends keyof HealthReport>(k: K, v: HealthReport[K] | undefined) => {
    if (v !== undefined) report[k] = v;
  };
  set('cpuTempC', take('cpuTemp', HEALTH_FILES.cpuTemp, parseTempMilliC));
  set('throttled', take('throttled', HEALTH_FILES.throttled, parseThrottled));
  set('load1', take('load', HEALTH_FILES.loadavg, parseLoad1));
  set('memUsedPct', mem?.memUsedPct);
  set('swapUsedPct', mem?.swapUsedPct);
  set('diskUsedPct', diskUsedPct);
  set('flashWearPct', take('flashWear', HEALTH_FILES.emmcLifeTime, parseLifeTime));
  set('uptimeS', take('uptime', HEALTH_FILES.uptime, parseUptime));
  set('bootId', take('bootId', HEALTH_FILES.bootId, parseBootId));
  set('wifiSignalDbm', take('wifi', HEALTH_FILES.wireless, parseWirelessDbm));
  set('mmcErrors', take('mmcErrors', HEALTH_FILES.mmcErrStats, parseErrStats));
  if (ctx.underVoltageEvents === undefined) unreadable.push('underVoltageEvents');
  else set('underVoltageEvents', ctx.underVoltageEvents);
  const links = HEALTH_FILES.carrierChanges.map((f) => {
    const t = read(f);
    return t === undefined ? undefined : parseCount(t);
  });
  if (links.every((v) => v === undefined)) unreadable.push('linkChanges');
  else
    set(
      'linkChanges',
      links.reduce<number>((a, v) => a + (v ?? 0), 0),
    );
  return report;
}

/** Did the hardware watchdog reset the machine? (bootstatus is non-zero after a watchdog reset.) */
export function watchdogFired(src: HealthSource): boolean {
  const t = reader(src)(HEALTH_FILES.watchdogBootstatus);
  return t !== undefined && /^\d+$/.test(t.trim()) && Number(t.trim()) !== 0;
}

/** The numeric fields of a report, as readings of the `_health/<field>` streams. */
export function healthReadings(r: HealthReport): { stream: string; value: number }[] {
  const out: { stream: string; value: number }[] = [];
  for (const [k, v] of Object.entries(r)) {
    if (k === 'v' || k === 'ts') continue;
    if (typeof v === 'number') out.push({ stream: `_health/${k}`, value: v });
    else if (typeof v === 'boolean') out.push({ stream: `_health/${k}`, value: v ? 1 : 0 });
    else if (k === 'throttled' && v && typeof v === 'object') {
      for (const [f, b] of Object.entries(v)) out.push({ stream: `_health/throttled.${f}`, value: b ? 1 : 0 });
    }
  }
  return out;
}

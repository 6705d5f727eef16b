import { fileURLToPath } from 'node:url';
import { HealthReport } from '@fleetwave/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectHealth, healthReadings, watchdogFired } from './collector.js';
import { parseLifeTime, parseMeminfo, parseTempMilliC, parseThrottled, parseWirelessDbm } from './parsers.js';
import { deriveRestartReason } from './restart.js';
import { underVoltageWatch } from './undervoltage.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url));
const ctx = {
  device: 'gw-1',
  now: 1_700_000_000_000,
  restartReason: 'clean' as const,
  agentRestarts: 3,
  reconnects: 1,
  backlogDepth: 42,
  diskPath: '/',
};
const statfs = () => ({ blocks: 1000, bfree: 300, bavail: 250 });

describe('health collector', () => {
  it('reads a Raspberry Pi tree', () => {
    const uv = underVoltageWatch({ root: fixture('rpi4') });
    uv.poll();
    const r = collectHealth({ root: fixture('rpi4'), statfs }, { ...ctx, underVoltageEvents: uv.events });
    expect(HealthReport.parse(r)).toEqual(r);
    expect(r).toMatchObject({
      underVoltageEvents: 1,
      cpuTempC: 58.4,
      throttled: { underVoltage: true, freqCapped: false, throttled: true, softTempLimit: false },
      load1: 0.52,
      memUsedPct: 15.1,
      swapUsedPct: 25,
      diskUsedPct: 75,
      flashWearPct: 30,
      uptimeS: 86423.71,
      bootId: '6f0b5c4e-1d2a-4b8e-9a61-2f1b7c9d0e11',
      wifiSignalDbm: -57,
      mmcErrors: 7,
      linkChanges: 5,
      agentRestarts: 3,
      backlogDepth: 42,
      unreadable: [],
    });
    expect(watchdogFired({ root: fixture('rpi4') })).toBe(false);
  });

  it('says what it could not read when files are missing or garbage, and never throws', () => {
    const r = collectHealth(
      {
        root: fixture('garbage'),
        statfs: () => {
          throw new Error('no');
        },
      },
      ctx,
    );
    expect(HealthReport.parse(r)).toEqual(r);
    expect([...r.unreadable].sort()).toEqual([
      'bootId',
      'cpuTemp',
      'disk',
      'flashWear',
      'linkChanges',
      'load',
      'memory',
      'mmcErrors',
      'throttled',
      'underVoltageEvents',
      'uptime',
      'wifi',
    ]);
    // a voltage monitor that says neither 0 nor 1 is unreadable, not "no episodes"
    const uv = underVoltageWatch({ root: fixture('garbage') });
    uv.poll();
    expect(uv).toMatchObject({ available: true, events: undefined });
    expect(r.cpuTempC).toBeUndefined();
    const empty = collectHealth({ root: '/nonexistent-root', statfs }, ctx);
    expect(empty.unreadable).toContain('cpuTemp');
    expect(empty.diskUsedPct).toBe(75);
  });

  it('counts under-voltage episodes: rpi_volt alarm first, else the firmware bit; nothing where neither exists', () => {
    const files = new Map<string, string>();
    const src = {
      root: '/',
      read: (p: string) => {
        const t = files.get(p);
        if (t === undefined) throw new Error('ENOENT');
        return t;
      },
    };
    const run = (path: string, states: string[]) => {
      files.set(path, states[0]!);
      const w = underVoltageWatch(src);
      for (const st of states) {
        files.set(path, st);
        w.poll();
      }
      return w.events;
    };
    expect(underVoltageWatch(src).available).toBe(false); // not a Raspberry Pi
    // the firmware's bit 0 (under-voltage now); bit 16 (has occurred) alone is not an episode
    const fw = '/sys/devices/platform/soc/soc:firmware/get_throttled';
    expect(run(fw, ['0x0', '0x50005', '0x50005', '0x50000', '0x50001', '0x0', 'garbage', '0x1'])).toBe(3);
    // with the kernel's voltage monitor present it is the one watched
    files.set('/sys/class/hwmon/hwmon3/name', 'rpi_volt\n');
    const alarm = '/sys/class/hwmon/hwmon3/in0_lcrit_alarm';
    files.set(fw, '0x50005');
    expect(run(alarm, ['0\n', '0\n', '1\n', '0\n', '1\n', '1\n'])).toBe(2);
  });

  it('turns a report into _health readings', () => {
    const r = collectHealth({ root: fixture('rpi4'), statfs }, ctx);
    const readings = healthReadings(r);
    expect(readings).toContainEqual({ stream: '_health/cpuTempC', value: 58.4 });
    expect(readings).toContainEqual({ stream: '_health/throttled.underVoltage', value: 1 });
    expect(readings.every((x) => Number.isFinite(x.value))).toBe(true);
  });

  it('parsers never throw and return only plausible values on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (t) => {
        const temp = parseTempMilliC(t);
        expect(temp === undefined || (temp >= -100 && temp <= 200)).toBe(true);
        const m = parseMeminfo(t);
        expect(m.memUsedPct === undefined || (m.memUsedPct >= 0 && m.memUsedPct <= 100)).toBe(true);
        const w = parseLifeTime(t);
        expect(w === undefined || (w >= 10 && w <= 100)).toBe(true);
        const dbm = parseWirelessDbm(t);
        expect(dbm === undefined || (dbm < 0 && dbm >= -150)).toBe(true);
        parseThrottled(t);
      }),
    );
  });
});

describe('restart reason', () => {
  it('tells first boot, clean stop, crash, power loss and watchdog apart', () => {
    expect(deriveRestartReason(undefined, 'b1', false)).toBe('first-boot');
    expect(deriveRestartReason({ bootId: 'b1', clean: true, starts: 1 }, 'b2', false)).toBe('clean');
    expect(deriveRestartReason({ bootId: 'b1', clean: false, starts: 1 }, 'b1', false)).toBe('crash');
    expect(deriveRestartReason({ bootId: 'b1', clean: false, starts: 1 }, 'b2', false)).toBe('power-loss');
    expect(deriveRestartReason({ bootId: 'b1', clean: false, starts: 1 }, 'b2', true)).toBe('watchdog');
    expect(deriveRestartReason({ bootId: null, clean: false, starts: 1 }, 'b2', false)).toBe('unknown');
  });
});

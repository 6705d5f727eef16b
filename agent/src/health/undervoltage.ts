import type { HealthSource } from './collector.js';
import { HEALTH_FILES, reader } from './collector.js';
import { parseThrottled } from './parsers.js';

/** hwmon devices looked at for the Raspberry Pi's voltage monitor (`name` is `rpi_volt`). */
const HWMON_SCAN = 32;

/**
 * Counts under-voltage episodes on a Raspberry Pi: polled (every `health.underVoltagePoll`, 2 s by default), each
 * change from "no under-voltage" to "under-voltage" is one event. It watches the kernel's voltage monitor
 * (hwmon `rpi_volt`, `in0_lcrit_alarm`: set when the firmware saw under-voltage in the driver's last 2 s poll) where
 * that driver is loaded, else the firmware's "under-voltage now" bit of `get_throttled`. An episode shorter than the
 * poll can be missed with the latter; the count is since the agent started (the controller reads a drop as a reset).
 * `events` is undefined where neither exists (not a Raspberry Pi) or before the state could be read once.
 */
export function underVoltageWatch(src: HealthSource): {
  /** Whether this machine has something to watch (polling is pointless otherwise). */
  readonly available: boolean;
  poll(): void;
  readonly events: number | undefined;
} {
  const read = reader(src);
  let state: (() => boolean | undefined) | undefined;
  for (let i = 0; i < HWMON_SCAN && !state; i++) {
    if (read(`sys/class/hwmon/hwmon${i}/name`)?.trim() !== 'rpi_volt') continue;
    const alarm = `sys/class/hwmon/hwmon${i}/in0_lcrit_alarm`;
    state = () => {
      const t = read(alarm)?.trim();
      return t === '1' ? true : t === '0' ? false : undefined;
    };
  }
  if (!state && parseThrottled(read(HEALTH_FILES.throttled) ?? '') !== undefined) {
    state = () => parseThrottled(read(HEALTH_FILES.throttled) ?? '')?.underVoltage;
  }
  // undefined until the state was read once: a monitor that cannot be read is unreadable, not "no events"
  let events: number | undefined;
  let before = false;
  return {
    available: state !== undefined,
    poll() {
      const now = state?.();
      if (now === undefined) return;
      events ??= 0;
      if (now && !before) events++;
      before = now;
    },
    get events() {
      return events;
    },
  };
}

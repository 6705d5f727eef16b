/**
 * Parsers for the files the health collector reads. Each takes the file's text and returns a value, or undefined
 * when the text is not what the kernel writes there (garbage is "could not read", never a crash or a wrong number).
 */
const num = (s: string | undefined): number | undefined => {
  if (s === undefined || s.trim() === '') return undefined;
  const n = Number(s.trim());
  return Number.isFinite(n) ? n : undefined;
};

/** /sys/class/thermal/thermal_zone0/temp: millidegrees Celsius. */
export function parseTempMilliC(text: string): number | undefined {
  const v = num(text);
  return v === undefined || v < -100_000 || v > 200_000 ? undefined : Math.round(v / 100) / 10;
}

/** /proc/loadavg: "0.52 0.58 0.59 1/312 4561". */
export function parseLoad1(text: string): number | undefined {
  const v = num(text.split(/\s+/)[0]);
  return v === undefined || v < 0 ? undefined : v;
}

/** /proc/meminfo: memory and swap in use, in percent (MemAvailable counts as free). */
export function parseMeminfo(text: string): { memUsedPct?: number; swapUsedPct?: number } {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+)\s*kB/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]));
  }
  const out: { memUsedPct?: number; swapUsedPct?: number } = {};
  const total = kb.get('MemTotal');
  const avail = kb.get('MemAvailable');
  if (total && avail !== undefined && avail <= total) out.memUsedPct = round1(((total - avail) / total) * 100);
  const st = kb.get('SwapTotal');
  const sf = kb.get('SwapFree');
  if (st !== undefined && sf !== undefined && sf <= st) out.swapUsedPct = st === 0 ? 0 : round1(((st - sf) / st) * 100);
  return out;
}

/** /proc/uptime: "12345.67 23456.78" (seconds up, seconds idle). */
export function parseUptime(text: string): number | undefined {
  const v = num(text.split(/\s+/)[0]);
  return v === undefined || v < 0 ? undefined : v;
}

/** /proc/sys/kernel/random/boot_id: a UUID. */
export function parseBootId(text: string): string | undefined {
  const t = text.trim();
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(t) ? t : undefined;
}

/**
 * Raspberry Pi firmware throttling flags (`vcgencmd get_throttled`, also /sys/devices/platform/soc/soc:firmware/
 * get_throttled): bit 0 under-voltage now, 1 ARM frequency capped, 2 throttled, 3 soft temperature limit.
 */
export function parseThrottled(text: string) {
  const t = text.trim().replace(/^throttled=/, '');
  if (!/^(0x)?[0-9a-fA-F]{1,8}$/.test(t)) return undefined;
  const v = Number.parseInt(t, 16);
  return {
    underVoltage: (v & 1) !== 0,
    freqCapped: (v & 2) !== 0,
    throttled: (v & 4) !== 0,
    softTempLimit: (v & 8) !== 0,
  };
}

/**
 * eMMC life time estimate (/sys/block/mmcblk0/device/life_time: "0x01 0x02", types A and B), JEDEC: 0x01 means
 * 0–10% of the rated life used … 0x0A 90–100%, 0x0B beyond. Reported as the upper bound of the worse of the two.
 */
export function parseLifeTime(text: string): number | undefined {
  const parts = text.trim().split(/\s+/);
  if (parts.length < 1 || parts.length > 2 || !parts.every((p) => /^0x[0-9a-fA-F]{2}$/.test(p))) return undefined;
  const worst = Math.max(...parts.map((p) => Number.parseInt(p, 16)));
  if (worst < 1 || worst > 11) return undefined;
  return Math.min(100, worst * 10);
}

/** /proc/net/wireless: the signal level (dBm) of the first interface listed. */
export function parseWirelessDbm(text: string): number | undefined {
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*[\w.-]+:\s+\S+\s+\S+\s+(-?\d+)\.?/.exec(line);
    if (m) {
      const v = Number(m[1]);
      return v < 0 && v >= -150 ? v : undefined;
    }
  }
  return undefined;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** A single non-negative integer (sysfs counters such as carrier_changes). */
export function parseCount(t: string): number | undefined {
  const s = t.trim();
  return /^\d{1,15}$/.test(s) ? Number(s) : undefined;
}

/** The sum of the SD/MMC host's error counters in debugfs `err_stats` ("# Data CRC Errors Occurred:\t 0" lines). */
export function parseErrStats(t: string): number | undefined {
  let sum = 0;
  let lines = 0;
  for (const line of t.split('\n')) {
    const m = /^#?[^:]+:\s*(\d{1,15})\s*$/.exec(line);
    if (!m) continue;
    sum += Number(m[1]);
    lines++;
  }
  return lines === 0 ? undefined : sum;
}

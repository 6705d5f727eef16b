import type { Failure, History, Series } from './history.js';

/** The failure modes the simulator injects (and the predictor learns to name). */
export const FAILURE_MODES = ['flash-wear', 'thermal', 'power-supply', 'memory-leak', 'flaky-link'] as const;
export type FailureMode = (typeof FAILURE_MODES)[number];

/** The health metrics of the simulated fleet: the agent's health report fields (counters are cumulative). */
export const SIM_METRICS = [
  'cpuTempC',
  'load1',
  'memUsedPct',
  'diskUsedPct',
  'flashWearPct',
  'mmcErrors',
  'underVoltageEvents',
  'agentRestarts',
  'wifiSignalDbm',
  'linkChanges',
  'reconnects',
] as const;

export interface SimOptions {
  devices: number;
  days: number;
  /** Share of devices that fail during the history (default 0.3), spread over the modes. */
  failing?: number;
  /** Sample interval (default one hour). */
  stepMs?: number;
  seed?: number;
  start?: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A small seeded generator (mulberry32) so a simulated fleet is the same on every run. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next());
  const poisson = (lambda: number) => {
    if (lambda <= 0) return 0;
    if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * normal()));
    const l = Math.exp(-lambda);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= next();
    } while (p > l);
    return k - 1;
  };
  return { next, normal, poisson, uniform: (lo: number, hi: number) => lo + (hi - lo) * next() };
}

/**
 * A fleet of gateways with health histories: healthy devices with daily cycles, noise and harmless incidents of the
 * same size as the early signs of failure (a hot week, a burst of reconnects, a few flash errors, a brown-out), and
 * failing devices whose degradation begins 6–20 days before they fail, by mode:
 * flash wear-out (MMC errors accelerate, wear estimate climbs), thermal runaway (temperature and load trend up),
 * failing power supply (under-voltage events and power-loss restarts), memory leak (memory climbs, then restarts),
 * flaky link (signal drifts down, link changes and reconnects multiply).
 */
export function simulateFleet(o: SimOptions): { history: History; failures: Failure[] } {
  const r = rng(o.seed ?? 1);
  const step = o.stepMs ?? HOUR;
  const start = o.start ?? Date.parse('2026-01-01T00:00:00Z');
  const end = start + o.days * DAY;
  const nFailing = Math.round(o.devices * (o.failing ?? 0.3));
  const series: Series[] = [];
  const failures: Failure[] = [];
  for (let d = 0; d < o.devices; d++) {
    const device = `gw-${String(d).padStart(4, '0')}`;
    const mode: FailureMode | null = d < nFailing ? FAILURE_MODES[d % FAILURE_MODES.length]! : null;
    const failAt = mode ? start + r.uniform(Math.min(25, o.days * 0.4), o.days) * DAY : Number.POSITIVE_INFINITY;
    const onset = failAt - r.uniform(6, 20) * DAY;
    if (mode) failures.push({ device, time: Math.round(failAt), mode });
    const base = {
      temp: r.uniform(40, 65),
      load: r.uniform(0.2, 1.2),
      mem: r.uniform(25, 60),
      disk: r.uniform(15, 70),
      wear: Math.floor(r.uniform(0, 4)) * 10,
      wifi: r.uniform(-72, -45),
    };
    // harmless incidents: a hot spell, a network incident (reconnects and link flaps), a few flash errors, a brown-out
    const incident = (len: number) => {
      const at = start + r.uniform(0, o.days) * DAY;
      return { from: at, to: at + len };
    };
    const hot = r.next() < 0.3 ? incident(r.uniform(2, 7) * DAY) : null;
    const netIncident = r.next() < 0.4 ? incident(r.uniform(2, 24) * HOUR) : null;
    const mmcBurst = r.next() < 0.2 ? incident(r.uniform(1, 6) * HOUR) : null;
    const brownOut = r.next() < 0.2 ? incident(r.uniform(1, 4) * HOUR) : null;
    const within = (w: { from: number; to: number } | null, t: number) => w !== null && t >= w.from && t < w.to;
    const c = { mmc: 0, uv: 0, restarts: 0, link: 0, reconnects: 0 };
    let leak = 0;
    const s: Series = { device, t: [], metrics: Object.fromEntries(SIM_METRICS.map((m) => [m, []])) };
    const push = (m: (typeof SIM_METRICS)[number], v: number) => s.metrics[m]!.push(v);
    for (let t = start; t < Math.min(end, failAt); t += step) {
      const x = mode && t > onset ? Math.min(1, (t - onset) / (failAt - onset)) : 0;
      const hourOfDay = ((t - start) / HOUR) % 24;
      const daily = Math.sin(((hourOfDay - 9) / 24) * 2 * Math.PI);
      const hours = step / HOUR;
      let temp = base.temp + 4 * daily + 1.2 * r.normal() + (within(hot, t) ? 6 : 0);
      let load = base.load + 0.3 * Math.max(0, daily) + 0.15 * Math.abs(r.normal());
      let mem = base.mem + 2 * r.normal();
      let wifi = base.wifi + 2.5 * r.normal() - (within(netIncident, t) ? 8 : 0);
      let wear = base.wear;
      let rates = {
        mmc: 0.003 + (within(mmcBurst, t) ? 1.5 : 0),
        uv: 0.002 + (within(brownOut, t) ? 2 : 0),
        restarts: 0.0008,
        link: 0.01 + (within(netIncident, t) ? 1 : 0),
        reconnects: 0.01 + (within(netIncident, t) ? 1.5 : 0),
      };
      switch (mode && x > 0 ? mode : null) {
        case 'flash-wear':
          rates = { ...rates, mmc: rates.mmc + 3 * x * x, restarts: rates.restarts + 0.05 * x ** 3 };
          wear = Math.min(100, base.wear + Math.floor(x * 6) * 10);
          break;
        case 'thermal':
          temp += 28 * x * x;
          load += 1.5 * x;
          break;
        case 'power-supply':
          rates = { ...rates, uv: rates.uv + 4 * x * x, restarts: rates.restarts + 0.15 * x * x };
          break;
        case 'memory-leak':
          leak = Math.min(100 - base.mem, (100 - base.mem) * 1.2 * x);
          mem += leak;
          if (mem > 92) rates = { ...rates, restarts: rates.restarts + 0.2 };
          break;
        case 'flaky-link':
          wifi -= 22 * x;
          rates = { ...rates, link: rates.link + 2 * x * x, reconnects: rates.reconnects + 3 * x * x };
          break;
        default:
      }
      c.mmc += r.poisson(rates.mmc * hours);
      c.uv += r.poisson(rates.uv * hours);
      c.restarts += r.poisson(rates.restarts * hours);
      c.link += r.poisson(rates.link * hours);
      c.reconnects += r.poisson(rates.reconnects * hours);
      s.t.push(t);
      push('cpuTempC', Math.min(95, temp));
      push('load1', Math.max(0, load));
      push('memUsedPct', Math.max(0, Math.min(100, mem)));
      push('diskUsedPct', Math.min(100, base.disk + ((t - start) / DAY) * 0.05));
      push('flashWearPct', wear);
      push('mmcErrors', c.mmc);
      push('underVoltageEvents', c.uv);
      push('agentRestarts', c.restarts);
      push('wifiSignalDbm', Math.max(-100, Math.min(-20, wifi)));
      push('linkChanges', c.link);
      push('reconnects', c.reconnects);
    }
    series.push(s);
  }
  return { history: { metrics: [...SIM_METRICS], series, cycles: false }, failures };
}

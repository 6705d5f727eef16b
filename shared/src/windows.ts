import { CronExpressionParser } from 'cron-parser';

/** A recurring window: it opens at every occurrence of a cron expression (in a time zone) and lasts `duration` ms. */
export interface WindowSpec {
  cron: string;
  duration: number;
  timezone: string;
}

/** The reason a cron expression or time zone is not usable, or undefined when it is. */
export function cronProblem(cron: string, timezone: string): string | undefined {
  try {
    Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    return `unknown time zone "${timezone}"`;
  }
  try {
    CronExpressionParser.parse(cron, { tz: timezone, strict: false }).next();
    return undefined;
  } catch (err) {
    return `cron expression "${cron}" is invalid: ${(err as Error).message}`;
  }
}

export interface WindowState {
  open: boolean;
  /** When open: when it closes. */
  closesAt?: number;
  /** When closed: when it next opens. */
  opensAt?: number;
}

/** Whether `now` lies in [occurrence, occurrence + duration) for the latest occurrence at or before `now`. */
export function windowAt(spec: WindowSpec, now: number): WindowState {
  const prev = CronExpressionParser.parse(spec.cron, { tz: spec.timezone, currentDate: new Date(now + 1) })
    .prev()
    .getTime();
  if (prev <= now && now < prev + spec.duration) return { open: true, closesAt: prev + spec.duration };
  const next = CronExpressionParser.parse(spec.cron, { tz: spec.timezone, currentDate: new Date(now) })
    .next()
    .getTime();
  return { open: false, opensAt: next };
}

/** Open when any window is open (no windows: always open). */
export function anyWindowAt(specs: readonly WindowSpec[], now: number): WindowState {
  if (specs.length === 0) return { open: true };
  const states = specs.map((s) => windowAt(s, now));
  const open = states.filter((s) => s.open);
  if (open.length > 0) return { open: true, closesAt: Math.max(...open.map((s) => s.closesAt ?? now)) };
  return { open: false, opensAt: Math.min(...states.map((s) => s.opensAt ?? Number.POSITIVE_INFINITY)) };
}

/**
 * Report by exception, compared with the last *reported* value, strictly: report when |last − current| > band
 * (OPC UA AbsoluteDeadband / PercentDeadband). IEEE doubles make 1.3 − 1.2 = 0.10000000000000009: a difference
 * within DEADBAND_RELATIVE_TOLERANCE × max(|last|, |current|, band) above the band counts as equal to the band, so
 * it is not reported. Guarantee: every reading not reported is within band (plus that tolerance) of the last
 * reported value, so a step-hold reconstruction is never off by more than the band.
 */
export const DEADBAND_RELATIVE_TOLERANCE = 1e-9;

export type DeadbandConfig = { absolute: number } | { percent: number; span: readonly [number, number] };

export function bandOf(cfg: DeadbandConfig): number {
  return 'absolute' in cfg ? cfg.absolute : (cfg.percent / 100) * (cfg.span[1] - cfg.span[0]);
}

export function exceedsBand(last: number, current: number, band: number): boolean {
  const tolerance = DEADBAND_RELATIVE_TOLERANCE * Math.max(Math.abs(last), Math.abs(current), band);
  return Math.abs(current - last) > band + tolerance;
}

/**
 * Exponential back-off with "equal jitter": the delay doubles per failed attempt from minMs, is capped at maxMs, and
 * a random half of it is jittered so a fleet that lost its broker does not reconnect in step.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (base / 2) * random());
}

/**
 * Exponential back-off with "equal jitter": the delay doubles per failed attempt from minMs, is capped at maxMs, and
 * a random half of it is jittered so a fleet that lost its broker does not reconnect in step.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (base / 2) * random());
}

/**
 * The wait before the next connection attempt. After losing a connection that worked, a uniform random delay within
 * `spreadMs`: every agent of a fleet loses the broker in the same instant when it or the controller restarts, and the
 * backoff's first delay (a quarter to a half second) would bring them all back within that half second. Then, while
 * attempts fail, the backoff.
 */
export function reconnectDelay(
  wasConnected: boolean,
  attempt: number,
  o: { backoffMinMs: number; backoffMaxMs: number; reconnectSpreadMs?: number },
  random: () => number,
): number {
  if (wasConnected && o.reconnectSpreadMs) return Math.round(random() * o.reconnectSpreadMs);
  return backoffDelay(attempt, o.backoffMinMs, o.backoffMaxMs, random);
}

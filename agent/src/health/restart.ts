/** What the agent persists about its own run, to tell at the next start how the last one ended. */
export interface RunMarker {
  bootId: string | null;
  clean: boolean;
  starts: number;
}

export type RestartReason = 'first-boot' | 'clean' | 'crash' | 'power-loss' | 'watchdog' | 'update' | 'unknown';

/**
 * Why the agent is starting, from the marker the previous run left: none → first boot; a clean stop → clean; the
 * same boot → the agent crashed (or was killed); another boot without a clean stop → the machine went down under it:
 * a watchdog reset when the watchdog says it fired, else power loss.
 */
export function deriveRestartReason(
  prev: RunMarker | undefined,
  bootId: string | null,
  watchdogFired: boolean,
): RestartReason {
  if (!prev) return 'first-boot';
  if (prev.clean) return 'clean';
  if (bootId === null || prev.bootId === null) return 'unknown';
  if (prev.bootId === bootId) return 'crash';
  return watchdogFired ? 'watchdog' : 'power-loss';
}

/**
 * Resolves at the first SIGINT or SIGTERM. Called before start-up, so a supervisor that signals the moment it reads
 * "ready" gets a clean stop. Both listeners go with the first signal: a second one ends the process at once.
 */
export function firstStopSignal(onSignal?: () => void): Promise<void> {
  return new Promise((resolve) => {
    const once = () => {
      process.off('SIGINT', once);
      process.off('SIGTERM', once);
      onSignal?.();
      resolve();
    };
    process.on('SIGINT', once);
    process.on('SIGTERM', once);
  });
}

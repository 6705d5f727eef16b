import type { Logger } from 'pino';

/**
 * Wraps a duty beside the data path (status file, backlog report, health sample, expiry, filter ticks) so that a
 * fault in it is logged and retried at its next turn, never fatal: an exception thrown from a timer would end the
 * process (issue "Agent: a full disk, a crash loop…"). Logs at warn once per new failure message, and at info when the
 * duty works again.
 */
export function sideDuty(log: Logger, duty: string, fn: () => void): () => void {
  let failing: string | undefined;
  return () => {
    try {
      fn();
      if (failing !== undefined) log.info({ duty }, 'side duty works again');
      failing = undefined;
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (message !== failing) log.warn({ duty, err: message }, 'side duty failed; retried at its next turn');
      failing = message;
    }
  };
}

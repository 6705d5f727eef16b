/**
 * Ends a long-running process on an error nothing caught (a timer, a callback, a rejected promise) with one
 * structured line saying what happened and where, instead of a bare stack: supervisors and operators see why it
 * stopped (exit status 70, EX_SOFTWARE). Installed once by each program's entry file.
 */
export function exitOnUncaught(log: { fatal: (obj: object, msg: string) => void }, program: string): void {
  const die = (origin: string) => (err: unknown) => {
    try {
      log.fatal(
        { err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err), origin },
        `${program}: an error nothing handled ends the process (${origin}); please report it with this line`,
      );
    } finally {
      process.exit(70);
    }
  };
  process.on('uncaughtException', die('uncaughtException'));
  process.on('unhandledRejection', die('unhandledRejection'));
}

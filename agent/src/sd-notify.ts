import { spawn } from 'node:child_process';

/**
 * systemd's notify protocol through the `systemd-notify` tool (Node has no unix datagram sockets): READY=1 once the
 * agent is up, WATCHDOG=1 at half of WatchdogSec from a timer of the event loop — so a stalled loop stops the pings
 * and systemd restarts the agent — and STOPPING=1. Does nothing outside a Type=notify unit (no NOTIFY_SOCKET).
 */
export function systemdNotify(env: NodeJS.ProcessEnv = process.env): { stop(): void } {
  if (!env.NOTIFY_SOCKET) return { stop() {} };
  const send = (msg: string) => {
    const p = spawn('systemd-notify', [`--pid=${process.pid}`, msg], { stdio: 'ignore', env });
    p.on('error', () => {});
  };
  send('READY=1');
  const usec = Number(env.WATCHDOG_USEC ?? 0);
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  const timer = usec > 0 && forUs ? setInterval(() => send('WATCHDOG=1'), Math.max(500, usec / 2000)) : undefined;
  timer?.unref();
  return {
    stop() {
      if (timer) clearInterval(timer);
      send('STOPPING=1');
    },
  };
}

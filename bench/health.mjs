// Health collector cost: one sample of this machine's /proc and /sys (what the agent does every interval).
import { tmpdir } from 'node:os';
import { collectHealth } from '@fleetwave/agent';

export function benchHealth(n = 2000) {
  console.log(`\n# health collector: ${n} samples of this machine's /proc and /sys, in process`);
  const ctx = {
    device: 'bench',
    now: Date.now(),
    restartReason: 'clean',
    agentRestarts: 0,
    reconnects: 0,
    backlogDepth: 0,
    diskPath: tmpdir(),
  };
  const first = collectHealth({ root: '/' }, ctx);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) collectHealth({ root: '/' }, ctx);
  const us = ((performance.now() - t0) / n) * 1000;
  console.log(
    `${us.toFixed(0)} µs per sample: ${((us / 1e6 / 60) * 100).toFixed(5)}% of one core at the default 60 s interval; ` +
      `unreadable on this machine (no Raspberry Pi files here): ${first.unreadable.join(', ') || 'none'}`,
  );
}

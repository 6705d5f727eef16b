// Health collector cost: one sample of this machine's /proc and /sys (what the agent does every interval).
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { collectHealth, underVoltageWatch } from '@fleetwave/agent';

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
  // the under-voltage watch: one small sysfs read per poll (2 s by default), against the recorded Raspberry Pi tree
  const rpi = fileURLToPath(new URL('../agent/src/health/fixtures/rpi4/', import.meta.url));
  const watch = underVoltageWatch({ root: rpi });
  const t1 = performance.now();
  for (let i = 0; i < n * 10; i++) watch.poll();
  const pollUs = ((performance.now() - t1) / (n * 10)) * 1000;
  console.log(
    `under-voltage watch: ${pollUs.toFixed(1)} µs per poll (the recorded Raspberry Pi tree, rpi_volt alarm): ` +
      `${((pollUs / 1e6 / 2) * 100).toFixed(5)}% of one core at the default 2 s poll`,
  );
}

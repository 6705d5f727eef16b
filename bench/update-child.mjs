// One update's download, verification and install, as the agent does them, in a process of its own (for its memory).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { download, FilesInstaller, sha256File } from '@fleetwave/agent';
import { pino } from 'pino';

const [url, size, sha, dir, mode] = process.argv.slice(2);
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
const t0 = performance.now();
const dest = join(dir, 'artifact');
if (mode === 'node-copy') {
  // the reference: a bare stream copy of the same URL
  const { pipeline } = await import('node:stream/promises');
  const { Readable } = await import('node:stream');
  const { createWriteStream } = await import('node:fs');
  const res = await fetch(url);
  await pipeline(Readable.fromWeb(res.body), createWriteStream(dest));
  console.log(JSON.stringify({ downloadS: (performance.now() - t0) / 1000, hwmMB: hwm() }));
  process.exit(0);
}
await download({ url, dest, size: Number(size), retries: 0, backoffMs: 10 });
const downloadS = (performance.now() - t0) / 1000;
const t1 = performance.now();
if ((await sha256File(dest)) !== sha) throw new Error('hash mismatch');
const verifyS = (performance.now() - t1) / 1000;
const t2 = performance.now();
const manifest = { name: 'bench', version: '1.0.0', install: { type: 'files', target: 'bench' } };
await new FilesInstaller({ appsDir: join(dir, 'apps'), maxBytes: 2 ** 31 }).install({
  manifest,
  artifacts: [dest],
  slot: {},
  previousVersion: null,
  log: pino({ level: 'silent' }),
});
const installS = (performance.now() - t2) / 1000;
console.log(JSON.stringify({ downloadS, verifyS, installS, hwmMB: hwm() }));

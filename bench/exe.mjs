// Single-executable benchmark (issues "The agent as one executable", "Agent: small on the gateway"): sizes of the
// executables and the bundle, the x64 footprint (footprint.mjs: start-up, memory, throughput against `node` running
// the same bundle under other V8 settings), and start-up under qemu for arm64 (emulated).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { benchFootprint, cloud, startAgent, stopAgent } from './footprint.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const exe = (arch) => join(root, 'dist-exe', `fleetwave-agent-linux-${arch}`);
const bundleDir = join(root, 'dist-bundle');

export async function benchExe() {
  console.log('\n# the agent as one executable (dist-exe/, built by npm run build:agent)');
  if (!existsSync(exe('x64'))) {
    console.log('no dist-exe/fleetwave-agent-linux-x64: run npm run build:agent first');
    return;
  }
  for (const arch of ['x64', 'arm64']) {
    if (!existsSync(exe(arch))) continue;
    const bytes = statSync(exe(arch)).size;
    const gz = gzipSync(readFileSync(exe(arch)), { level: 9 }).length;
    console.log(`size ${arch}: ${(bytes / 2 ** 20).toFixed(1)} MiB raw, ${(gz / 2 ** 20).toFixed(1)} MiB gzip -9`);
  }
  for (const f of existsSync(bundleDir) ? readdirSync(bundleDir) : []) {
    const bytes = readFileSync(join(bundleDir, f));
    console.log(
      `bundle dist-bundle/${f}: ${(bytes.length / 2 ** 20).toFixed(2)} MiB raw, ${(gzipSync(bytes, { level: 9 }).length / 2 ** 20).toFixed(2)} MiB gzip -9`,
    );
  }
  await benchFootprint();
  if (existsSync(exe('arm64'))) {
    const c = await cloud();
    const a = await startAgent(['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', exe('arm64')], {}, c.url);
    await stopAgent(a);
    await c.close();
    console.log(
      `arm64 executable under qemu-user (emulated on this x64 machine): "ready" ${a.readyMs.toFixed(0)} ms, first reading acknowledged ${a.ms.toFixed(0)} ms`,
    );
  }
}

// Update benchmark (issue "Agent: staged updates"): download, verify and install a 100 MB artifact from a local HTTP
// server, against curl and a bare Node stream copy of the same file in the same run, and the peak memory of each.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MB = Number(process.env.BENCH_UPDATE_MB ?? 100);
const child = fileURLToPath(new URL('./update-child.mjs', import.meta.url));

export async function benchUpdate() {
  console.log(`\n# update: a ${MB} MB artifact (a tar of incompressible data) from a local HTTP server on 127.0.0.1`);
  const dir = mkdtempSync(join(tmpdir(), 'fw-bench-update-'));
  const src = join(dir, 'src');
  mkdirSync(src);
  const chunk = randomBytes(1024 * 1024);
  const blob = Buffer.alloc(MB * 1024 * 1024);
  for (let i = 0; i < MB; i++) {
    chunk.writeUInt32LE(i, 0);
    chunk.copy(blob, i * chunk.length);
  }
  writeFileSync(join(src, 'blob.bin'), blob);
  const tar = join(dir, 'app.tar');
  execFileSync('tar', ['-cf', tar, '-C', src, 'blob.bin']);
  const size = statSync(tar).size;
  const sha = createHash('sha256');
  for await (const c of createReadStream(tar)) sha.update(c);
  const digest = sha.digest('hex');
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
    createReadStream(tar).pipe(res);
  }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${server.address().port}/app.tar`;
  const mbps = (s) => (size / 2 ** 20 / s).toFixed(0);
  const runChild = (mode) => {
    const out = join(dir, mode);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [child, url, String(size), digest, out, mode], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      p.stdout.on('data', (d) => (text += d));
      p.on('close', (code) => (code === 0 ? resolve(JSON.parse(text)) : reject(new Error(`child exited ${code}`))));
    });
  };
  const agent = await runChild('agent');
  const copy = await runChild('node-copy');
  // curl from a child process (not spawnSync: the server runs in this process's event loop)
  const c0 = performance.now();
  const curlStatus = await new Promise((resolve) => {
    const p = spawn('curl', ['-s', '-o', join(dir, 'curl.out'), url], { stdio: 'ignore' });
    p.on('error', () => resolve(-1));
    p.on('close', (code) => resolve(code));
  });
  const curlS = curlStatus === 0 ? (performance.now() - c0) / 1000 : Number.NaN;
  server.close();
  console.log(
    `agent download: ${mbps(agent.downloadS)} MB/s (${agent.downloadS.toFixed(2)} s); same run: bare Node stream copy ${mbps(copy.downloadS)} MB/s, curl ${Number.isNaN(curlS) ? 'absent' : `${mbps(curlS)} MB/s`}`,
  );
  console.log(
    `agent verify (SHA-256 of the file): ${mbps(agent.verifyS)} MB/s; install (archive check + unpack into a slot): ${mbps(agent.installS)} MB/s; ` +
      `download + verify + install ${(agent.downloadS + agent.verifyS + agent.installS).toFixed(2)} s`,
  );
  console.log(
    `peak memory (VmHWM) of the process doing it: agent path ${agent.hwmMB.toFixed(0)} MB, bare Node copy ${copy.hwmMB.toFixed(0)} MB, for a ${(size / 2 ** 20).toFixed(0)} MB artifact (streamed, not buffered)`,
  );
  rmSync(dir, { recursive: true, force: true });
}

